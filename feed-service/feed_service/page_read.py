"""One feed page in one Redis round trip: the page's post IDs and the posts' JSON bytes.

A Lua script reads the reader's timeline, the reader's set of pulled followees, those
authors' recent lists and the cached bodies of the page's posts, drops the posts of
authors the reader no longer follows, and refreshes the timeline's TTL and the
last-active throttle on the way. Paging is that of
`photogram_common.timelines.older_than_many` (whole milliseconds, the post ID as an exact
cursor), done inside Redis. Lua numbers are doubles, so IDs are compared as decimal
strings (a longer string is a larger ID).

On a single Redis (and the embedded stand-in) the script reads other authors' keys than
the ones it declares; Redis Cluster forbids that, so there the script reads only the
reader's own slot and the rest follows in one pipeline (`PageRead.partial`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from photogram_contracts.keys import (
    counts_key,
    followees_key,
    liked_floor_key,
    liked_key,
    post_cache_key,
    pulled_key,
    rebuild_lock_key,
    recent_key,
    seen_key,
    timeline_key,
)

from photogram_common.metrics import REDIS_DURATION, timed
from photogram_common.timelines import SENTINEL, older_than_many, score

# KEYS: timeline, followee set, pulled set, rebuild lock, seen throttle, liked set, liked
# set's floor.
# ARGV: before ID ('' for the first page), its score (the negated millisecond), want,
# TTL, refresh when the TTL is below this, seen throttle seconds, '1' to read the pulled
# lists and bodies too, the reader's ID.
# Replies: {'timeline'} not built or being rebuilt; {'follows'} follow sets not built;
# {'liked'} the liked set not built; {'recent', authors...} pulled authors whose recent
# list is not built;
# {'ok', seen, n, pulled, ids..., bodies..., counts..., liked...} (pulled: how many pulled
# authors' lists were merged; up to want+1 IDs; of the first
# `want`, the bodies (that of a post by an author the reader does not follow is '', like a
# deleted one), the counts and whether the reader likes each: 1, 0, or 2 for a post older
# than the liked set's floor);
# {'partial', seen, n, pulled, ids..., authors...} (the reader's own slot only).
_PAGE = """
local tl, fl, pf = KEYS[1], KEYS[2], KEYS[3]
if redis.call('EXISTS', tl) == 0 or redis.call('EXISTS', KEYS[4]) == 1 then
  return {'timeline'}
end
local pulled = redis.call('SMEMBERS', pf)
if #pulled == 0 or redis.call('EXISTS', fl) == 0 then return {'follows'} end
local lk = KEYS[6]
if redis.call('EXISTS', lk) == 0 then return {'liked'} end
local before, before_ms, want = ARGV[1], ARGV[2], tonumber(ARGV[3])
local full = ARGV[7] == '1'
local authors = {}
for _, a in ipairs(pulled) do
  if a ~= '0' then authors[#authors + 1] = a end
end
if full then
  local missing = {'recent'}
  for _, a in ipairs(authors) do
    if redis.call('EXISTS', 'rp2:{' .. a .. '}') == 0 then missing[#missing + 1] = a end
  end
  if #missing > 1 then return missing end
end
local seen = redis.call('SET', KEYS[5], '1', 'NX', 'EX', ARGV[6]) and 1 or 0
if redis.call('TTL', tl) < tonumber(ARGV[5]) then
  redis.call('EXPIRE', tl, ARGV[4])
  redis.call('EXPIRE', fl, ARGV[4])
  redis.call('EXPIRE', pf, ARGV[4])
  redis.call('EXPIRE', lk, ARGV[4])
  redis.call('EXPIRE', KEYS[7], ARGV[4])
end
local reader = ARGV[8]

local function lt(a, b)
  if #a ~= #b then return #a < #b end
  return a < b
end

local limit = want + 1
-- One list's newest `limit` IDs older than the cursor, newest first, by whole milliseconds.
-- Scores are negated milliseconds (a list runs newest first): older is a higher score.
local function older(key)
  local out = {}
  if before ~= '' then
    local own = redis.call('ZRANGEBYSCORE', key, before_ms, before_ms)
    for i = 1, #own do
      if lt(own[i], before) then out[#out + 1] = own[i] end
    end
  end
  local lower = before == '' and '-inf' or ('(' .. before_ms)
  local window = redis.call('ZRANGEBYSCORE', key, lower, '(0', 'LIMIT', 0, limit)
  local keep = #window
  local whole = nil
  if keep == limit then
    -- The window may cut its last millisecond: leave that millisecond out, and read it
    -- whole if what remains does not fill the page.
    local last = redis.call('ZSCORE', key, window[keep])
    while keep > 0 and redis.call('ZSCORE', key, window[keep]) == last do keep = keep - 1 end
    if #out + keep < limit then whole = redis.call('ZRANGEBYSCORE', key, last, last) end
  end
  for i = 1, keep do out[#out + 1] = window[i] end
  if whole then
    for i = 1, #whole do out[#out + 1] = whole[i] end
  end
  -- Redis orders one millisecond's members as strings, ascending: order them by ID.
  table.sort(out, function(a, b) return lt(b, a) end)
  return out
end

local lists = {older(tl)}
if full then
  for _, a in ipairs(authors) do lists[#lists + 1] = older('rp2:{' .. a .. '}') end
end
-- Merge the lists (each newest first), a post in several of them once.
local found, heads = {}, {}
for i = 1, #lists do heads[i] = 1 end
while #found < limit do
  local best = nil
  for i = 1, #lists do
    local m = lists[i][heads[i]]
    if m and (best == nil or lt(best, m)) then best = m end
  end
  if best == nil then break end
  found[#found + 1] = best
  for i = 1, #lists do
    if lists[i][heads[i]] == best then heads[i] = heads[i] + 1 end
  end
end
local n = math.min(#found, limit)
local reply = {full and 'ok' or 'partial', seen, n, #authors}
for i = 1, n do reply[#reply + 1] = found[i] end
if full then
  local m = math.min(n, want)
  if m > 0 then
    local keys, counts = {}, {}
    for i = 1, m do
      keys[i] = 'post:{' .. found[i] .. '}'
      counts[i] = 'pe:{' .. found[i] .. '}'
    end
    local bodies = redis.call('MGET', unpack(keys))
    for i = 1, m do
      local body = bodies[i]
      if body and body ~= '' then
        -- The post's own user_id is the body's first one (media come after it).
        local author = string.match(body, '"user_id":"(%d+)"')
        if author ~= reader and redis.call('SISMEMBER', fl, author) == 0 then body = '' end
      end
      reply[#reply + 1] = body
    end
    for _, value in ipairs(redis.call('MGET', unpack(counts))) do reply[#reply + 1] = value end
    local floor = redis.call('GET', KEYS[7])
    for i = 1, m do
      if floor and lt(found[i], floor) then reply[#reply + 1] = 2
      else reply[#reply + 1] = redis.call('SISMEMBER', lk, found[i]) end
    end
  end
else
  for _, a in ipairs(authors) do reply[#reply + 1] = a end
end
return reply
"""


class NotBuilt(Exception):
    """A list the read needs is not built; `what` says which."""

    def __init__(self, what: str, authors: list[int] | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.authors = authors or []


# Whether the reader likes a post: as the liked set says, or unknown (older than its floor).
UNKNOWN = 2


@dataclass
class Slice:
    """Up to want+1 post IDs, newest first, with the cached bodies, counts (raw, see
    photogram_common.engagement_cache) and the reader's likes (0, 1 or UNKNOWN) of the
    first `want`."""

    ids: list[int]
    bodies: list[bytes | None]
    seen_due: bool
    counts: list[bytes | None] = field(default_factory=list)
    liked: list[int] = field(default_factory=list)
    authors: list[int] = field(default_factory=list)
    reader_id: int = 0
    # How many pulled authors' recent lists were merged into `ids`.
    pulled: int = 0


_AUTHOR = re.compile(rb'"user_id":"(\d+)"')


def author_of(body: bytes | None) -> int | None:
    """The author of a cached post body: its first user_id (the media's come after it)."""
    if not body:
        return None
    found = _AUTHOR.search(body)
    return int(found.group(1)) if found else None


class PageRead:
    """Runs the page script; `redis` must return bytes (decode_responses=False)."""

    def __init__(
        self,
        redis: Any,
        *,
        ttl_seconds: int,
        refresh_below_seconds: int,
        seen_seconds: int,
        single_node: bool,
    ) -> None:
        self.redis = redis
        self.ttl_seconds = ttl_seconds
        self.refresh_below_seconds = refresh_below_seconds
        self.seen_seconds = seen_seconds
        self.single_node = single_node
        self._script = redis.register_script(_PAGE)

    async def slice(self, reader_id: int, *, before: int | None, want: int) -> Slice:
        """Read one slice of the reader's feed; raise NotBuilt for a list to rebuild first."""
        tl = timeline_key(reader_id)
        with timed(REDIS_DURATION, op="feed_page"):
            reply = await self._script(
                keys=[
                    tl,
                    followees_key(reader_id),
                    pulled_key(reader_id),
                    rebuild_lock_key(tl),
                    seen_key(reader_id),
                    liked_key(reader_id),
                    liked_floor_key(reader_id),
                ],
                args=[
                    "" if before is None else str(before),
                    0 if before is None else score(before),
                    want,
                    self.ttl_seconds,
                    self.refresh_below_seconds,
                    self.seen_seconds,
                    "1" if self.single_node else "0",
                    reader_id,
                ],
            )
        status = reply[0].decode()
        if status in ("timeline", "follows", "liked"):
            raise NotBuilt(status)
        if status == "recent":
            raise NotBuilt(status, [int(a) for a in reply[1:]])
        seen_due, count, pulled = bool(reply[1]), int(reply[2]), int(reply[3])
        ids = [int(i) for i in reply[4 : 4 + count]]
        rest = reply[4 + count :]
        if status == "ok":
            m = len(rest) // 3
            return Slice(
                ids=ids,
                bodies=list(rest[:m]),
                counts=list(rest[m : 2 * m]),
                liked=[int(x) for x in rest[2 * m :]],
                seen_due=seen_due,
                pulled=pulled,
            )
        return await self._complete(
            Slice(
                ids=ids,
                bodies=[],
                seen_due=seen_due,
                authors=[int(a) for a in rest],
                reader_id=reader_id,
                pulled=pulled,
            ),
            before=before,
            want=want,
        )

    async def _complete(self, part: Slice, *, before: int | None, want: int) -> Slice:
        """The pulled authors' lists and the bodies, where the script could not read them."""
        if part.authors:
            unbuilt = await self._unbuilt([recent_key(a) for a in part.authors])
            if unbuilt:
                raise NotBuilt("recent", [part.authors[i] for i in unbuilt])
            lists = await older_than_many(
                self.redis, [recent_key(a) for a in part.authors], before=before, limit=want + 1
            )
            merged = set(part.ids)
            for found in lists:
                merged.update(found)
            part.ids = sorted(merged, reverse=True)[: want + 1]
        if not part.ids:
            return part
        page = part.ids[:want]
        async with self.redis.pipeline(transaction=False) as pipe:
            for post_id in page:
                pipe.get(post_cache_key(post_id))
            for post_id in page:
                pipe.get(counts_key(post_id))
            replies = await pipe.execute()
        bodies: list[bytes | None] = list(replies[: len(page)])
        part.counts = list(replies[len(page) :])
        reader = part.reader_id
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.smismember(liked_key(reader), [str(p) for p in page])
            pipe.get(liked_floor_key(reader))
            found, floor = await pipe.execute()
        part.liked = [
            UNKNOWN if floor is not None and p < int(floor) else int(bool(yes))
            for p, yes in zip(page, found, strict=True)
        ]
        authors = {a for a in map(author_of, bodies) if a is not None}
        followed = await self._followed(part.reader_id, sorted(authors))
        part.bodies = [b"" if body and author_of(body) not in followed else body for body in bodies]
        return part

    async def _followed(self, reader_id: int, authors: list[int]) -> set[int]:
        if not authors:
            return set()
        found = await self.redis.smismember(followees_key(reader_id), [str(a) for a in authors])
        return {a for a, yes in zip(authors, found, strict=True) if yes or a == reader_id}

    async def _unbuilt(self, keys: list[str]) -> list[int]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.exists(key)
            present = await pipe.execute()
        return [i for i, here in enumerate(present) if not here]


__all__ = ["SENTINEL", "UNKNOWN", "NotBuilt", "PageRead", "Slice", "author_of"]
