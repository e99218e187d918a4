"""Two people in two browsers: sign up, follow, share two photos, see them arrive in the
feed, like, comment, get notified, delete, and the post is gone for both."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import TypeAlias

from PIL import Image, ImageDraw
from playwright.sync_api import BrowserContext, Locator, Page, expect

PASSWORD = "correct horse battery"
CAPTION = "Sunset over the river"
FEED_BOUND_MS = 5_000  # a followed account's new post is in the feed within 5 s (api.md)
# Notifications appear within the same bound; the client asks for the count every 5 s.
UNREAD_MS = 15_000
Shoot: TypeAlias = Callable[[Page, str], None]
NewContext: TypeAlias = Callable[[str], BrowserContext]


def sunset(width: int, height: int, sun: tuple[int, int, int]) -> bytes:
    """A JPEG of a sky fading from orange to violet over dark water, with a sun."""
    picture = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(picture)
    horizon = height * 2 // 3
    for y in range(horizon):
        t = y / horizon
        sky = (int(90 + 160 * t), int(40 + 90 * t), int(140 - 60 * t))
        draw.line([(0, y), (width, y)], fill=sky)
    draw.rectangle((0, horizon, width, height), fill=(25, 35, 70))
    r = min(width, height) // 8
    draw.ellipse((width // 2 - r, horizon - r, width // 2 + r, horizon + r), fill=sun)
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=85)
    return out.getvalue()


def sign_up(page: Page, username: str) -> None:
    page.goto("/")
    expect(page.get_by_role("button", name="Sign up")).to_be_visible()
    page.get_by_label("Username").fill(username)
    page.get_by_label("Email").fill(f"{username}@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("region", name="Feed")).to_be_visible()


def follow(page: Page, username: str) -> None:
    page.get_by_role("searchbox", name="Search").fill(username[:3])
    page.get_by_role("link", name=username, exact=True).click()
    expect(page).to_have_url(f"/u/{username}")
    page.get_by_role("button", name="Follow", exact=True).click()
    expect(page.get_by_role("button", name="Unfollow", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="1 follower", exact=True)).to_be_visible()


def share(page: Page, shoot: Shoot) -> str:
    """Post two photos with a caption and a location; return the post's page address."""
    page.get_by_role("link", name="New post").click()
    river = sunset(1600, 1200, (255, 214, 120))
    dusk = sunset(1000, 1250, (255, 160, 90))
    page.get_by_label("Photos").set_input_files(
        [
            {"name": "river.jpg", "mimeType": "image/jpeg", "buffer": river},
            {"name": "dusk.jpg", "mimeType": "image/jpeg", "buffer": dusk},
        ]
    )
    expect(page.get_by_role("img", name="river.jpg")).to_be_visible()
    page.get_by_label("Caption").fill(CAPTION)
    page.get_by_label("Location").fill("Lisbon")
    shoot(page, "new-post")
    # The upload reports its progress as it goes (a bar of 0 to 1, then the post's page).
    page.evaluate(
        """() => { window.progressSeen = [];
        const bar = document.querySelector('progress');
        new MutationObserver(() => window.progressSeen.push(Number(bar.value)))
          .observe(bar, {attributes: true}); }"""
    )
    page.get_by_role("button", name="Share").click()
    expect(page).to_have_url(re.compile(r"/p/\d+$"))
    expect(page.get_by_role("article")).to_contain_text(CAPTION)
    return page.url


def in_feed(page: Page) -> Locator:
    return page.get_by_role("region", name="Feed").get_by_role("article").filter(has_text=CAPTION)


def like_toggles(post: Locator) -> None:
    like = post.get_by_role("button", name="Like", exact=True)
    expect(like).to_have_attribute("aria-pressed", "false")
    like.click()
    expect(like).to_have_attribute("aria-pressed", "true")
    expect(post.get_by_text("1 like", exact=True)).to_be_visible()
    like.click()
    expect(like).to_have_attribute("aria-pressed", "false")
    expect(post.get_by_text("0 likes", exact=True)).to_be_visible()
    like.click()
    expect(like).to_have_attribute("aria-pressed", "true")
    expect(post.get_by_text("1 like", exact=True)).to_be_visible()


def test_two_people_follow_share_like_comment_and_delete(
    new_context: NewContext, shoot: Shoot
) -> None:
    ana = new_context("phone").new_page()
    bruno = new_context("desktop").new_page()

    ana.goto("/")
    shoot(ana, "sign-up")
    sign_up(ana, "ana_lima")
    sign_up(bruno, "bruno")
    follow(ana, "bruno")

    # Ana waits on her feed; Bruno's post must reach it while she looks.
    ana.get_by_role("link", name="Home").click()
    expect(ana.get_by_role("region", name="Feed")).to_be_visible()
    post_url = share(bruno, shoot)
    post_path = re.sub(r"^https?://[^/]+", "", post_url)
    progress = bruno.evaluate("() => window.progressSeen")
    assert progress, "no upload progress was shown"
    assert progress[-1] == 1, progress

    post = in_feed(ana)
    expect(post).to_be_visible(timeout=FEED_BOUND_MS)
    expect(post.get_by_role("link", name="bruno", exact=True)).to_be_visible()
    photos = post.get_by_role("img", name=CAPTION)
    expect(photos).to_have_count(2)
    expect(ana.locator("img:not([alt])")).to_have_count(0)
    expect(photos.first).to_have_attribute("srcset", re.compile(r"320w, .+ 640w, .+ 1080w"))
    expect(photos.first).to_have_class(re.compile(r"\bloaded\b"))
    expect(post.locator(".photo").first).to_have_css(
        "background-image", re.compile(r"^url\(\"data:image/png")
    )
    like_toggles(post)
    shoot(ana, "feed")

    # The post's page, and a comment on it.
    post.get_by_role("link", name="0 comments").click()
    expect(ana).to_have_url(post_path)
    ana.get_by_label("Add a comment").fill("What a view!")
    ana.get_by_label("Add a comment").press("Enter")
    expect(ana.get_by_role("listitem").filter(has_text="What a view!")).to_be_visible()
    expect(ana.get_by_role("link", name="1 comment", exact=True)).to_be_visible()
    expect(ana.get_by_role("button", name="Delete", exact=True)).to_have_count(0)
    shoot(ana, "post")

    ana.get_by_role("link", name="bruno", exact=True).first.click()
    expect(ana).to_have_url("/u/bruno")
    expect(ana.get_by_role("link", name=CAPTION)).to_be_visible()
    shoot(ana, "profile")
    ana.get_by_role("link", name="1 follower", exact=True).click()
    expect(ana.get_by_role("list").get_by_role("link", name="ana_lima")).to_be_visible()

    # Bruno is told of the follow, the like and the comment; reading them clears the count.
    notifications = bruno.get_by_role("link", name=re.compile(r"^Notifications"))
    expect(notifications).to_have_accessible_name("Notifications 3 unread", timeout=UNREAD_MS)
    notifications.click()
    expect(bruno.get_by_text("started following you.")).to_be_visible()
    expect(bruno.get_by_text("liked your post.")).to_be_visible()
    expect(bruno.get_by_text("commented on your post.")).to_be_visible()
    expect(notifications).to_have_accessible_name("Notifications")

    # Bruno deletes the post: it leaves his profile, Ana's feed while she looks (and after a
    # reload), and its address answers "not found".
    ana.get_by_role("link", name="Home").click()
    expect(in_feed(ana)).to_be_visible()
    bruno.goto(post_path)
    bruno.once("dialog", lambda dialog: dialog.accept())
    bruno.get_by_role("button", name="Delete", exact=True).click()
    expect(bruno).to_have_url("/u/bruno")
    expect(bruno.locator(f'a[href="{post_path}"]')).to_have_count(0)
    expect(in_feed(ana)).to_have_count(0, timeout=FEED_BOUND_MS)
    ana.reload()
    expect(ana.get_by_role("region", name="Feed")).to_contain_text("Nothing here yet")
    expect(in_feed(ana)).to_have_count(0)
    ana.goto(post_path)
    expect(ana.get_by_role("heading", name="Post not found")).to_be_visible()


def test_an_expired_access_token_is_refreshed_and_log_out_ends_the_session(
    new_context: NewContext,
) -> None:
    page = new_context("phone").new_page()
    sign_up(page, "carla")
    page.evaluate(
        """() => { const s = JSON.parse(localStorage.getItem('photogram.session'));
        s.access_token = 'no-longer-valid';
        localStorage.setItem('photogram.session', JSON.stringify(s)); }"""
    )
    page.reload()
    # Shown only once the feed's page was read, with the refreshed token.
    expect(page.get_by_role("region", name="Feed")).to_contain_text("Nothing here yet")
    session = page.evaluate("() => JSON.parse(localStorage.getItem('photogram.session'))")
    assert session["access_token"] != "no-longer-valid"

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url("/login")
    page.get_by_label("Username").fill("carla")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("region", name="Feed")).to_be_visible()
