"""Who may do what: the caller of a request, and the checks every operation shares.

`Caller` is what a bearer token resolved to. The checks here are the one place each
rule lives: membership of a group (refused in the same words whether the group
exists or not, so a refusal tells nothing of other groups), a name's one peer, a
message one may reply to, a credential still valid when a waiting call completes.
"""

from __future__ import annotations

from dataclasses import dataclass

from relay.protocol import name_key
from relay.server.errors import Forbidden, NotFound, Unauthorized
from relay.server.metrics import Metrics
from relay.server.state import PeerState, RelayState
from relay.server.validate import check_group_name

__all__ = [
    "Caller",
    "canonical_name",
    "member_group",
    "recheck",
    "reply_target",
    "require_operator",
    "require_peer",
]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a request is from: a peer, or the operator (peer is None).

    `token_hash` is the credential it came with, so an operation that waited can
    check that the credential still holds when it completes (`recheck`).
    """

    peer: PeerState | None
    operator: bool = False
    token_hash: str = ""


def require_peer(caller: Caller) -> PeerState:
    if caller.peer is None:
        raise Forbidden("this needs a peer token, not the operator token")
    return caller.peer


def require_operator(caller: Caller, what: str) -> None:
    if not caller.operator:
        raise Forbidden(f"{what} needs the operator token")


def member_group(peer: PeerState, group: object) -> str:
    """`group`, a valid group name of which `peer` is a member; else the one refusal,
    the same whether the group exists or not."""
    name = check_group_name(group)
    if name not in peer.groups:
        yours = ", ".join(sorted(peer.groups)) or "(none)"
        raise NotFound(f"you are not a member of group {name!r}; your groups: {yours}")
    return name


def canonical_name(state: RelayState, name: str) -> str:
    """The spelling of the peer that `name` (in any case) means, else `name` itself."""
    peer_id = state.names.get(name_key(name))
    return state.peers[peer_id].name if peer_id is not None else name


def reply_target(state: RelayState, peer: PeerState, reply_to: object) -> str | None:
    """`reply_to`, when it is the id of a message `peer` can see."""
    if reply_to is None:
        return None
    if not isinstance(reply_to, str) or not state.can_see(peer.id, reply_to):
        raise NotFound(f"no message {reply_to!r} that you can see; reply_to takes a message id")
    return reply_to


def recheck(state: RelayState, metrics: Metrics, caller: Caller) -> None:
    """Unauthorized when `caller`'s token was revoked since the request began.

    Operations that wait (a long poll, a slow scan) call this before they act on
    what they found, so a revoked credential never reads or marks anything.
    """
    if caller.operator:
        return
    peer = state.peer_by_token(caller.token_hash)
    if peer is None or caller.peer is None or peer.id != caller.peer.id:
        metrics.auth_failures += 1
        raise Unauthorized("your token was revoked while the request ran")
