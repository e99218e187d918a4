"""user-service use cases: accounts, tokens, the follow graph and its counts."""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from photogram_contracts.events import (
    Crossing,
    FollowCreated,
    FollowDeleted,
    PostCreated,
    PostDeleted,
    UserDeleted,
)
from photogram_contracts.identity import Identity
from redis.exceptions import RedisClusterException, RedisError
from sqlalchemy import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from photogram_common.cursors import decode_cursor, encode_cursor
from photogram_common.db import Database
from photogram_common.identity import issue_access_token
from photogram_common.ids import IdGenerator
from photogram_common.outbox import Outbox
from photogram_common.problems import Problem
from photogram_common.sessions import RevokedSessions
from photogram_common.timeutil import to_rfc3339, utcnow
from user_service import repository as repo
from user_service.passwords import Passwords
from user_service.schemas import (
    AuthRead,
    AvatarRead,
    DeliveryRead,
    FolloweeRead,
    FolloweesRead,
    FollowerIdsPage,
    LoginCreate,
    ProfileRead,
    ProfileUpdate,
    SignupCreate,
    UserMeRead,
    UserRead,
    UsersPage,
    ViewerRead,
)


def user_read(row: RowMapping) -> UserRead:
    return UserRead(
        user_id=str(row["id"]),
        username=row["username"],
        first_name=row["first_name"],
        last_name=row["last_name"],
        location=row["location"],
        created_at=to_rfc3339(row["created_at"]),
        followers_count=row["followers_count"],
        following_count=row["following_count"],
        posts_count=row["posts_count"],
        bio=row["bio"],
        avatar=row.get("avatar"),
    )


def user_me_read(row: RowMapping) -> UserMeRead:
    return UserMeRead(**user_read(row).model_dump(), email=row["email"])


log = logging.getLogger(__name__)
# The largest value of an INTEGER column (the counts'): a cursor above every user.
MAX_COUNT = 2**31 - 1


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _session_ended() -> Problem:
    return Problem(
        401,
        "The refresh token is not valid: log in again.",
        title="Unauthorized",
        headers={"WWW-Authenticate": "Bearer"},
    )


def _not_found() -> Problem:
    return Problem(404, "No such user.", title="Not found")


def pulled_band(threshold: int) -> int:
    """How far below the threshold a pulled author must fall to be pushed again."""
    return max(1, threshold // 10)


def next_pulled(count: int, *, was: bool, threshold: int) -> bool:
    """An author's delivery after a change of their follower count, with hysteresis.

    Pulled from the threshold up; pushed again only at `threshold - band` or below; in
    between, whatever they were. An author flapping at either edge crosses once.
    """
    if count >= threshold:
        return True
    if count <= threshold - pulled_band(threshold):
        return False
    return was


@dataclass(frozen=True)
class _FolloweeChange:
    count: int
    pulled: bool
    crossed: Crossing | None

    def event_fields(self) -> dict[str, Any]:
        return {
            "followee_followers_count": self.count,
            "followee_pulled": self.pulled,
            "followee_crossed": self.crossed,
        }


@dataclass
class UserService:
    database: Database
    outbox: Outbox
    ids: IdGenerator
    jwt_secret: str
    token_ttl_seconds: int
    seen_resolution_seconds: int = 60
    celebrity_threshold: int = 10_000
    refresh_ttl_seconds: int = 30 * 86400
    revoked: RevokedSessions | None = None
    passwords: Passwords = field(default_factory=Passwords)

    async def _start_session(self, session: AsyncSession, row: RowMapping) -> AuthRead:
        """A new session for the user, with its first refresh token (in the caller's
        transaction)."""
        session_id = self.ids.next_id()
        await repo.insert_session(session, session_id=session_id, user_id=row["id"], at=utcnow())
        return await self._tokens(session, row, session_id)

    async def _tokens(self, session: AsyncSession, row: RowMapping, session_id: int) -> AuthRead:
        """An access token of the session, and its next refresh token (stored hashed)."""
        refresh = secrets.token_urlsafe(32)
        now = utcnow()
        await repo.insert_refresh_token(
            session,
            token_hash=_digest(refresh),
            session_id=session_id,
            at=now,
            expires=now + timedelta(seconds=self.refresh_ttl_seconds),
        )
        token = issue_access_token(
            secret=self.jwt_secret,
            identity=Identity(user_id=row["id"], username=row["username"], session_id=session_id),
            ttl_seconds=self.token_ttl_seconds,
        )
        return AuthRead(
            user=user_me_read(row),
            access_token=token,
            expires_in=self.token_ttl_seconds,
            refresh_token=refresh,
            refresh_expires_in=self.refresh_ttl_seconds,
        )

    async def refresh(self, refresh_token: str) -> AuthRead:
        """Trade a refresh token for a new pair; it is single-use. One presented again
        (a copy: stolen, or a retry that lost its answer) ends its whole session."""
        token_hash, now = _digest(refresh_token), utcnow()
        async with self.database.transaction() as session:
            found = await repo.find_refresh_token(session, token_hash, live_at=now)
            if found is None:
                raise _session_ended()
            if found["revoked_at"] is not None:
                # Mark it again: the mark may have been lost with a Redis.
                await self._mark_revoked(found["user_id"], found["session_id"], must=False)
                raise _session_ended()
            if await repo.use_refresh_token(session, token_hash, at=now):
                row = await repo.get_user(session, found["user_id"])
                if row is None:
                    raise _session_ended()
                return await self._tokens(session, row, found["session_id"])
            await repo.revoke_session(session, found["session_id"], at=now)
        await self._mark_revoked(found["user_id"], found["session_id"], must=False)
        log.warning(
            "a used refresh token came back: session revoked", extra={"user_id": found["user_id"]}
        )
        raise _session_ended()

    async def logout(self, refresh_token: str) -> None:
        """End the token's session: its refresh tokens and its access tokens stop at once.
        Idempotent for a session already ended; a token never issued is a 401."""
        async with self.database.transaction() as session:
            found = await repo.find_refresh_token(session, _digest(refresh_token))
            if found is None:
                raise _session_ended()
            await repo.revoke_session(session, found["session_id"], at=utcnow())
        await self._mark_revoked(found["user_id"], found["session_id"])

    async def _mark_revoked(self, user_id: int, session_id: int, *, must: bool = True) -> None:
        """Tell the gateway (after the commit: the database is the truth for refreshes).
        When `must`, a failure is a 503 (a logout: its retry marks it again); otherwise the
        next refresh with one of the session's tokens tries again."""
        if self.revoked is None:
            return
        try:
            await self.revoked.mark(user_id, session_id)
        except (RedisError, RedisClusterException, OSError) as exc:  # the latter: a cluster down
            log.warning("could not mark a session revoked", extra={"user_id": user_id})
            if not must:
                return
            raise Problem(
                503, "Try again shortly.", title="Service unavailable", headers={"Retry-After": "1"}
            ) from exc

    async def signup(self, data: SignupCreate) -> AuthRead:
        password_hash = await self.passwords.hash(data.password)
        now = utcnow()
        values: dict[str, Any] = {
            "id": self.ids.next_id(),
            "username": data.username,
            "email": data.email,
            "email_normalized": data.email.lower(),
            "password_hash": password_hash,
            "first_name": data.first_name,
            "last_name": data.last_name,
            "location": data.location,
            "created_at": now,
            "last_active_at": now,
        }
        try:
            async with self.database.transaction() as session:
                if await repo.username_or_email_taken(session, data.username, data.email.lower()):
                    raise _taken()
                await repo.insert_user(session, values)
                row = await repo.get_user(session, values["id"])
                assert row is not None
                auth = await self._start_session(session, row)
        except IntegrityError as exc:
            # Two signups raced for the same name: the unique index decided.
            raise _taken() from exc
        return auth

    async def login(self, data: LoginCreate) -> AuthRead:
        async with self.database.transaction() as session:
            row = await repo.get_user_by_login(session, data.login)
        if not await self.passwords.verify(row["password_hash"] if row else None, data.password):
            raise Problem(
                401,
                "Wrong login or password.",
                title="Unauthorized",
                headers={"WWW-Authenticate": "Bearer"},
            )
        assert row is not None
        await self.seen(row["id"])
        async with self.database.transaction() as session:
            return await self._start_session(session, row)

    async def me(self, user_id: int) -> UserMeRead:
        async with self.database.transaction() as session:
            row = await repo.get_user(session, user_id)
        if row is None:
            raise Problem(
                401,
                "The account no longer exists.",
                title="Unauthorized",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return user_me_read(row)

    async def batch(self, user_ids: Sequence[int]) -> list[UserRead]:
        """These users in the order asked, the unknown left out."""
        async with self.database.transaction() as session:
            rows = {r["id"]: r for r in await repo.get_users(session, user_ids)}
        return [user_read(rows[u]) for u in user_ids if u in rows]

    async def get(self, user_id: int, *, viewer_id: int = 0) -> ProfileRead:
        async with self.database.transaction() as session:
            row = await repo.get_user(session, user_id)
            return await self._profile(session, row, viewer_id)

    async def get_by_username(self, username: str, *, viewer_id: int = 0) -> ProfileRead:
        async with self.database.transaction() as session:
            row = await repo.get_user_by_username(session, username)
            return await self._profile(session, row, viewer_id)

    async def _profile(
        self, session: AsyncSession, row: RowMapping | None, viewer_id: int
    ) -> ProfileRead:
        """The user as the viewer sees them: with the relationship, unless it is them (or
        a service asks: viewer 0)."""
        if row is None:
            raise _not_found()
        profile = ProfileRead(**user_read(row).model_dump())
        if viewer_id and viewer_id != row["id"]:
            following, followed_by = await repo.relationship(session, viewer_id, row["id"])
            profile.viewer = ViewerRead(following=following, followed_by=followed_by)
        return profile

    async def update_me(self, user_id: int, data: ProfileUpdate) -> UserMeRead:
        """Set the fields the request gave (a bio set to null is emptied)."""
        values: dict[str, Any] = {name: getattr(data, name) for name in data.model_fields_set}
        if "bio" in values and values["bio"] is None:
            values["bio"] = ""
        async with self.database.transaction() as session:
            if values:
                await repo.update_profile(session, user_id, values)
            row = await repo.get_user(session, user_id)
        if row is None:
            raise _not_found()
        return user_me_read(row)

    async def follow(self, *, follower_id: int, followee_id: int) -> None:
        if follower_id == followee_id:
            raise Problem(
                422,
                "You cannot follow yourself.",
                title="Validation failed",
                extra={
                    "errors": [{"loc": ["path", "user_id"], "msg": "self", "type": "value_error"}]
                },
            )
        async with self.database.transaction() as session:
            if await repo.get_user(session, followee_id) is None:
                raise _not_found()
            created = await repo.insert_follow(
                session,
                follower_id=follower_id,
                followee_id=followee_id,
                follow_id=self.ids.next_id(),
                at=utcnow(),
            )
            if created:
                change = await self._move_counts(
                    session, follower_id=follower_id, followee_id=followee_id, delta=1
                )
                await self.outbox.add(
                    session,
                    FollowCreated(
                        follower_id=follower_id, followee_id=followee_id, **change.event_fields()
                    ),
                )
        if created:
            self.outbox.notify()

    async def unfollow(self, *, follower_id: int, followee_id: int) -> None:
        async with self.database.transaction() as session:
            if await repo.get_user(session, followee_id) is None:
                raise _not_found()
            deleted = await self._unfollow_in(
                session, follower_id=follower_id, followee_id=followee_id
            )
        if deleted:
            self.outbox.notify()

    async def _move_counts(
        self, session: AsyncSession, *, follower_id: int, followee_id: int, delta: int
    ) -> _FolloweeChange:
        """Both counts, then the followee's delivery, in the caller's transaction."""
        moved = await repo.add_to_counts(
            session, follower_id=follower_id, followee_id=followee_id, delta=delta
        )
        if moved is None:
            raise _not_found()  # an account deleted meanwhile: the change rolls back
        count, was = moved
        pulled = next_pulled(count, was=was, threshold=self.celebrity_threshold)
        crossed: Crossing | None = None
        if pulled != was:
            await repo.set_pulled(session, user_id=followee_id, pulled=pulled)
            crossed = "up" if pulled else "down"
        return _FolloweeChange(count=count, pulled=pulled, crossed=crossed)

    async def set_avatar(self, user_id: int, avatar: AvatarRead | None) -> UserMeRead:
        async with self.database.transaction() as session:
            values = {"avatar": None if avatar is None else avatar.model_dump()}
            await repo.update_profile(session, user_id, values)
            row = await repo.get_user(session, user_id)
        if row is None:
            raise _not_found()
        return user_me_read(row)

    async def delete_account(self, user_id: int, password: str) -> None:
        """Delete the account, once its password is given again: in one transaction its
        follows both ways (each with its event, so every count moves exactly), its sessions
        and its row (so the username and email are free at once), with `user.deleted` for
        the other services to remove its posts, likes, comments and notifications."""
        async with self.database.transaction() as session:
            row = await repo.get_user(session, user_id)
        if not await self.passwords.verify(row["password_hash"] if row else None, password):
            raise Problem(
                401,
                "The password is wrong.",
                title="Unauthorized",
                headers={"WWW-Authenticate": "Bearer"},
            )
        async with self.database.transaction() as session:
            if await repo.get_user(session, user_id) is None:
                raise _not_found()  # deleted by a concurrent request
            followees, followers = await repo.edges_of(session, user_id)
            for followee_id in followees:
                await self._unfollow_in(session, follower_id=user_id, followee_id=followee_id)
            for follower_id in followers:
                await self._unfollow_in(session, follower_id=follower_id, followee_id=user_id)
            ended = await repo.delete_account(session, user_id)
            await self.outbox.add(session, UserDeleted(user_id=user_id))
        self.outbox.notify()
        for session_id in ended:
            await self._mark_revoked(user_id, session_id, must=False)

    async def _unfollow_in(
        self, session: AsyncSession, *, follower_id: int, followee_id: int
    ) -> bool:
        """Delete the edge with both counts and its event; False when there was none."""
        if not await repo.delete_follow(session, follower_id=follower_id, followee_id=followee_id):
            return False
        change = await self._move_counts(
            session, follower_id=follower_id, followee_id=followee_id, delta=-1
        )
        await self.outbox.add(
            session,
            FollowDeleted(
                follower_id=follower_id, followee_id=followee_id, **change.event_fields()
            ),
        )
        return True

    async def follow_page(
        self, *, user_id: int, direction: str, cursor: str | None, limit: int
    ) -> UsersPage:
        before = decode_cursor(cursor, arity=1)[0] if cursor else None
        async with self.database.transaction() as session:
            if await repo.get_user(session, user_id) is None:
                raise _not_found()
            rows = await repo.follow_page(
                session, user_id=user_id, direction=direction, before=before, limit=limit + 1
            )
        page = rows[:limit]
        next_cursor = encode_cursor(page[-1][0]) if len(rows) > limit else None
        return UsersPage(items=[user_read(row) for _, row in page], next_cursor=next_cursor)

    async def search(self, query: str, *, cursor: str | None, limit: int) -> UsersPage:
        """Users whose username or first or last name starts with `query`, ignoring case:
        the user of exactly that name first, then the most followed."""
        prefix = query.strip().lower()
        after = tuple(decode_cursor(cursor, arity=2)) if cursor else None
        if after is not None and after[0] > MAX_COUNT:
            raise Problem(400, "The cursor is malformed.", title="Bad cursor")
        async with self.database.transaction() as session:
            exact = await repo.get_user_by_username(session, prefix)
            rows = await repo.search(session, prefix, after=after, limit=limit + 2)
        # The exact match leads the first page and is left out of every page's order.
        rows = [r for r in rows if exact is None or r["id"] != exact["id"]]
        if exact is not None and after is None:
            rows.insert(0, exact)
        page = rows[:limit]
        more = len(rows) > limit
        if not more or not page:
            return UsersPage(items=[user_read(r) for r in page], next_cursor=None)
        last = page[-1]
        if exact is not None and last["id"] == exact["id"]:
            # A page of one, the exact match: the rest starts from the top of the order,
            # (the largest count the column holds, any ID).
            next_cursor = encode_cursor(MAX_COUNT, 0)
        else:
            next_cursor = encode_cursor(last["followers_count"], last["id"])
        return UsersPage(items=[user_read(r) for r in page], next_cursor=next_cursor)

    async def active_followers(
        self, *, user_id: int, active_days: int, after: int, limit: int
    ) -> FollowerIdsPage:
        since = (
            utcnow() - timedelta(days=active_days)
            if active_days
            else datetime.min.replace(tzinfo=UTC)
        )
        async with self.database.single_statement() as session:
            ids = await repo.active_follower_ids(
                session, user_id=user_id, active_since=since, after=after, limit=limit
            )
        return FollowerIdsPage(
            user_ids=[str(i) for i in ids],
            next_after=str(ids[-1]) if len(ids) == limit else None,
        )

    async def followees(self, user_id: int) -> FolloweesRead:
        # One read: no BEGIN and COMMIT around it (every timeline rebuild asks).
        async with self.database.single_statement() as session:
            rows = await repo.followees(session, user_id=user_id)
        return FolloweesRead(
            items=[FolloweeRead(user_id=str(i), followers_count=c, pulled=p) for i, c, p in rows]
        )

    async def delivery(self, user_id: int) -> DeliveryRead:
        """Whether the user's posts are pulled at read time or pushed to followers."""
        async with self.database.transaction() as session:
            pulled = await repo.get_pulled(session, user_id)
        if pulled is None:
            raise _not_found()
        return DeliveryRead(user_id=str(user_id), pulled=pulled)

    async def seen(self, user_id: int) -> None:
        """Record activity, at most once per resolution period (it drives the fan-out)."""
        now = utcnow()
        async with self.database.transaction() as session:
            await repo.touch_last_active(
                session,
                user_id=user_id,
                at=now,
                older_than=now - timedelta(seconds=self.seen_resolution_seconds),
            )

    async def on_post_event(self, *, event_id: str, event: PostCreated | PostDeleted) -> None:
        """Keep posts_count in step with post-service, once per event."""
        async with self.database.transaction() as session:
            if not await repo.mark_processed(session, event_id=event_id, at=utcnow()):
                return
            delta = 1 if isinstance(event, PostCreated) else -1
            await repo.add_to_posts_count(session, user_id=event.author_id, delta=delta)

    async def purge_processed_events(self, *, older_than: timedelta, batch: int = 5000) -> int:
        """Forget the IDs of events handled longer ago than any redelivery can come."""
        before = utcnow() - older_than
        return await self.database.purge_in_batches(
            lambda session, limit: repo.purge_processed(session, before=before, limit=limit),
            batch=batch,
        )


def _taken() -> Problem:
    return Problem(409, "That username or email is already taken.", title="Conflict")
