"""Groups, peers and their credentials: creating groups, joining them, leaving them,
profiles, tokens, and who is in which group as a caller may see it.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from relay.protocol import SETTABLE_STATUSES, GroupInfo, Peer, name_key
from relay.server import auth
from relay.server.access import Caller, member_group, require_operator, require_peer
from relay.server.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from relay.server.parts import Operations, Parts
from relay.server.records import (
    GroupCreated,
    Joined,
    Left,
    PeerRevoked,
    PeerUpdated,
    SecretRotated,
    TokenAdded,
    TokenRevoked,
)
from relay.server.state import PeerState
from relay.server.validate import PROFILE_LIMITS, check_group_name, check_peer_name, check_profile

__all__ = ["Membership"]

log = logging.getLogger("relay.server")


class Membership(Operations):
    """The operations on groups, peers and tokens."""

    def __init__(self, parts: Parts, *, operator_hash: str) -> None:
        super().__init__(parts)
        self._operator_hash = operator_hash

    async def create_group(self, caller: Caller, name: object) -> tuple[str, str]:
        require_operator(caller, "creating a group")
        group = check_group_name(name)
        if group in self.state.groups:
            raise Conflict(f"group {group!r} already exists; pick another name")
        secret = auth.new_secret(auth.JOIN_PREFIX)
        await self.journal.commit(GroupCreated(group, auth.hash_secret(secret), self.clock()))
        log.info("group %s created", group)
        return group, secret

    async def join(
        self, group_name: object, secret: str | None, body: dict[str, Any], client: str = ""
    ) -> tuple[PeerState, str]:
        """Join with the group's join secret or the operator token; returns (peer, token).

        `client` is the caller's address. Wrong secrets are limited per address
        (`--join-rate`), checked before the secret is, so a spent budget refuses the
        right secret too; joins with the right one are limited to ten times that.
        The operator token is exempt: an operator connecting fifty agents is no flood.
        """
        group_name = check_group_name(group_name)
        if secret is None:
            raise Unauthorized("joining needs 'Authorization: Bearer <join secret>'")
        group = self.state.groups.get(group_name)
        secret_hash = auth.hash_secret(secret)
        operator = auth.same_hash(secret_hash, self._operator_hash)
        address = f"addr:{client}"
        if not operator:
            self.limits.take("guess", address, only_check=True)
        allowed = operator or (group is not None and auth.same_hash(secret_hash, group.secret_hash))
        if not allowed:
            self.metrics.auth_failures += 1
            self.limits.take("guess", address)
            raise Unauthorized(f"wrong join secret for group {group_name!r}")
        if not operator:
            self.limits.take("join", address)
        if group is None:
            raise NotFound(f"no group named {group_name!r}; create it first")
        name = check_peer_name(body.get("name"))
        profile = check_profile(
            {k: body.get(k) for k in ("kind", *PROFILE_LIMITS) if body.get(k) is not None}
        )
        kind = profile.pop("kind", "other")
        peer_token = body.get("peer_token")
        if peer_token is not None:
            return await self._join_again(group_name, name, str(peer_token), profile)
        holder_id = self.state.names.get(name_key(name))
        if holder_id is not None:
            holder = self.state.peer(holder_id).name
            alike = "" if holder == name else f" (as {holder!r}: case and look-alikes count)"
            raise Conflict(
                f"the name {name!r} is taken on this relay{alike}; choose another name, "
                "or prove you are that peer with its token (peer_token)"
            )
        token = auth.new_secret(auth.PEER_PREFIX)
        record = Joined(
            group_name,
            uuid.uuid4().hex,
            name,
            self.clock(),
            kind=kind,
            token_hash=auth.hash_secret(token),
            profile=profile,
        )
        applied = await self.journal.commit(record)
        log.info("peer %s joined group %s", name, group_name)
        return applied.result, token

    async def _join_again(
        self, group: str, name: str, peer_token: str, profile: dict[str, str]
    ) -> tuple[PeerState, str]:
        """An existing peer, proven by its token, joins a further group."""
        existing = self.state.peer_by_token(auth.hash_secret(peer_token))
        if existing is None:
            raise Unauthorized("peer_token is unknown or revoked")
        if existing.name != name:
            raise Conflict(
                f"that token belongs to peer {existing.name!r}, not {name!r}; "
                "a peer keeps one name in all its groups"
            )
        applied = await self.journal.commit(Joined(group, existing.id, name, self.clock()))
        if profile:
            await self.journal.commit(PeerUpdated(existing.id, profile, self.clock()))
        return applied.result, peer_token

    async def leave(self, peer: PeerState, group: object) -> None:
        name = member_group(peer, group)
        self.limits.take("update", peer.id)
        await self.journal.commit(Left(name, peer.id, self.clock()))

    async def update_profile(self, peer: PeerState, fields: dict[str, Any]) -> Peer:
        changes: dict[str, Any] = check_profile({k: v for k, v in fields.items() if k != "status"})
        if "status" in fields and fields["status"] is not None:
            status = fields["status"]
            if status not in SETTABLE_STATUSES:
                raise BadRequest(
                    f"invalid status {status!r}: use one of {', '.join(SETTABLE_STATUSES)}"
                )
            changes["status"] = status
        if changes:
            self.limits.take("update", peer.id)
            changes["online"] = self.presence.online(peer.id)
            await self.journal.commit(PeerUpdated(peer.id, changes, self.clock()))
        return self.presence.public(self.state.peer(peer.id))

    async def add_token(self, peer: PeerState) -> str:
        held = sum(1 for owner in self.state.tokens.values() if owner == peer.id)
        limit = self.config.max_tokens_per_peer
        if held >= limit:
            raise Conflict(
                f"you hold {held} tokens, the most a peer may (--max-tokens-per-peer "
                f"{limit}); revoke one you no longer use first"
            )
        self.limits.take("token", peer.id)
        token = auth.new_secret(auth.PEER_PREFIX)
        await self.journal.commit(TokenAdded(peer.id, auth.hash_secret(token)))
        return token

    async def revoke_token(self, caller: Caller, token: object) -> None:
        if not isinstance(token, str) or not token:
            raise BadRequest("give the token to revoke as 'token'")
        token_hash = auth.hash_secret(token)
        owner = self.state.tokens.get(token_hash)
        if owner is None:
            raise NotFound("no such token (already revoked?)")
        if not caller.operator and (caller.peer is None or caller.peer.id != owner):
            raise Forbidden("you may revoke only your own tokens")
        if caller.peer is not None:
            self.limits.take("token", caller.peer.id)
        await self.journal.commit(TokenRevoked(token_hash))

    async def rotate_secret(self, caller: Caller, group: object) -> str:
        """A new join secret for `group` (operator); the old one stops working."""
        require_operator(caller, "rotating a join secret")
        name = check_group_name(group)
        self.state.group(name)
        secret = auth.new_secret(auth.JOIN_PREFIX)
        await self.journal.commit(SecretRotated(name, auth.hash_secret(secret)))
        log.info("join secret of group %s rotated", name)
        return secret

    async def revoke_peer(self, caller: Caller, group: object, name: object) -> int:
        """Revoke every token of the peer `name` in `group` (operator); returns how many."""
        require_operator(caller, "revoking another peer's tokens")
        peer = self.state.member(check_group_name(group), check_peer_name(name))
        if peer is None:
            raise NotFound(f"no peer named {name!r} in group {group!r}")
        applied = await self.journal.commit(PeerRevoked(peer.id))
        log.info("all tokens of peer %s revoked", peer.name)
        count: int = applied.result
        return count

    def groups_of(self, caller: Caller) -> list[GroupInfo]:
        names = (
            sorted(self.state.groups) if caller.operator else sorted(require_peer(caller).groups)
        )
        return [
            GroupInfo(
                name=n,
                members=len(self.state.groups[n].members),
                last_seq=self.state.groups[n].last_seq,
            )
            for n in names
        ]

    def peers(self, caller: Caller, group: object = None) -> list[Peer]:
        if group is not None:
            names = (
                [check_group_name(group)]
                if caller.operator
                else [member_group(require_peer(caller), group)]
            )
        elif caller.operator:
            names = sorted(self.state.groups)
        else:
            names = sorted(require_peer(caller).groups)
        viewer = None if caller.operator else caller.peer
        seen: dict[str, Peer] = {}
        for name in names:
            for member in self.state.members(name):
                if member.id not in seen:
                    seen[member.id] = self.presence.public(member, viewer)
        return sorted(seen.values(), key=lambda p: p.name)
