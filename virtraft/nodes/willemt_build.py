"""Build willemt/raft from a source tree the user names, with cffi.

The library is not vendored: `VIRTRAFT_WILLEMT_SRC=/path/to/raft` names a
checkout of github.com/willemt/raft (tested at e428eeb). Its `src/*.c` are
compiled in cffi's API mode together with a small C preamble of our own,
and the compiled module is cached under a directory keyed by a hash of the
source tree, the preamble and the compiler flags, so every process of a
campaign reuses one build. `python -m virtraft.nodes.willemt_build [PATH]`
builds ahead of time and prints where the module is.

Two flags make the library testable:

- `-Drand=virtraft_rand`: the library draws election timeouts from libc's
  `rand()`; ours calls back into Python, into the running node's own
  seeded `random.Random`, so the same seed gives the same run.
- `-D__assert_fail=virtraft_assert_fail`: glibc's `assert()` calls this
  instead of aborting; it records what failed and jumps back to the entry
  wrapper (`vr_*`) the call came in through, which returns a fault code
  that Python raises as an exception. A fatal signal inside the library
  (a NULL dereference) is turned into the same fault by a signal handler
  that jumps back only when the fault happened inside library code, never
  inside a Python callback.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import sys
from pathlib import Path
from types import ModuleType

from virtraft.adapter import FactoryError
from virtraft.nodes import native
from virtraft.nodes.native import ENV_CACHE, FAULT, cache_dir  # noqa: F401 (re-exported)

ENV_SRC = "VIRTRAFT_WILLEMT_SRC"
SOURCES = ("raft_server.c", "raft_server_properties.c", "raft_node.c", "raft_log.c")
HEADERS = ("raft.h", "raft_types.h", "raft_private.h", "raft_log.h")

CFLAGS = (
    "-O2",
    "-g",
    "-w",
    "-UNDEBUG",
    "-fno-strict-aliasing",
    "-Wno-unused-result",
    "-Drand=virtraft_rand",
    "-D__assert_fail=virtraft_assert_fail",
)

CDEF_OWN = r"""
typedef int raft_entry_id_t;
typedef long int raft_term_t;
typedef long int raft_index_t;
typedef int raft_node_id_t;
typedef void* raft_server_t;
typedef void* raft_node_t;

#define RAFT_ERR_NOT_LEADER ...
#define RAFT_ERR_ONE_VOTING_CHANGE_ONLY ...
#define RAFT_ERR_SHUTDOWN ...
#define RAFT_ERR_NEEDS_SNAPSHOT ...
#define RAFT_ERR_SNAPSHOT_IN_PROGRESS ...
#define RAFT_ERR_SNAPSHOT_ALREADY_LOADED ...
#define RAFT_STATE_FOLLOWER ...
#define RAFT_STATE_CANDIDATE ...
#define RAFT_STATE_LEADER ...
#define RAFT_LOGTYPE_NORMAL ...
#define RAFT_LOGTYPE_ADD_NONVOTING_NODE ...
#define RAFT_LOGTYPE_ADD_NODE ...
#define RAFT_LOGTYPE_DEMOTE_NODE ...
#define RAFT_LOGTYPE_REMOVE_NODE ...
#define RAFT_MEMBERSHIP_ADD ...
#define RAFT_MEMBERSHIP_REMOVE ...

typedef struct { void *buf; unsigned int len; } raft_entry_data_t;
typedef struct {
    raft_term_t term; raft_entry_id_t id; int type; raft_entry_data_t data;
} raft_entry_t;
typedef raft_entry_t msg_entry_t;
typedef struct { raft_entry_id_t id; raft_term_t term; raft_index_t idx; } msg_entry_response_t;
typedef struct {
    raft_term_t term; raft_node_id_t candidate_id;
    raft_index_t last_log_idx; raft_term_t last_log_term;
} msg_requestvote_t;
typedef struct { raft_term_t term; int vote_granted; } msg_requestvote_response_t;
typedef struct {
    raft_term_t term; raft_index_t prev_log_idx; raft_term_t prev_log_term;
    raft_index_t leader_commit; int n_entries; msg_entry_t* entries;
} msg_appendentries_t;
typedef struct {
    raft_term_t term; int success; raft_index_t current_idx; raft_index_t first_idx;
} msg_appendentries_response_t;

/* Views, read directly: none of them asserts. */
int raft_get_nodeid(raft_server_t* me);
int raft_get_state(raft_server_t* me);
raft_term_t raft_get_current_term(raft_server_t* me);
int raft_get_voted_for(raft_server_t* me);
raft_index_t raft_get_commit_idx(raft_server_t* me);
raft_index_t raft_get_current_idx(raft_server_t* me);
raft_index_t raft_get_last_applied_idx(raft_server_t* me);
raft_index_t raft_get_snapshot_last_idx(raft_server_t* me);
raft_term_t raft_get_snapshot_last_term(raft_server_t* me);
int raft_snapshot_is_in_progress(raft_server_t* me);
raft_node_id_t raft_get_current_leader(raft_server_t* me);
int raft_is_leader(raft_server_t* me);
int raft_get_num_nodes(raft_server_t* me);
raft_node_t* raft_get_node(raft_server_t* me, raft_node_id_t id);
raft_node_t* raft_get_node_from_idx(raft_server_t* me, raft_index_t idx);
raft_node_id_t raft_node_get_id(raft_node_t* node);
int raft_node_is_voting(raft_node_t* node);
int raft_node_is_active(raft_node_t* node);
int raft_voting_change_is_in_progress(raft_server_t* me);
raft_entry_t* raft_get_entry_from_idx(raft_server_t* me, raft_index_t idx);
void vr_scalars(raft_server_t* me, long *out);

/* Everything that may assert or fault goes through a vr_* wrapper. */
raft_server_t* vr_new(void *udata, int election_timeout, int request_timeout);
int vr_free(raft_server_t* me);
int vr_add_node(raft_server_t* me, raft_node_id_t id, int is_self, int voting);
int vr_set_voting(raft_server_t* me, raft_node_id_t id, int voting);
int vr_set_active(raft_server_t* me, raft_node_id_t id, int active);
int vr_append_entry(raft_server_t* me, raft_entry_t* ety);
int vr_set_current_term(raft_server_t* me, raft_term_t term);
int vr_become_follower(raft_server_t* me);
int vr_vote_for_nodeid(raft_server_t* me, raft_node_id_t id);
int vr_set_commit_idx(raft_server_t* me, raft_index_t idx);
int vr_apply_all(raft_server_t* me);
int vr_periodic(raft_server_t* me, int msec);
int vr_recv_appendentries(raft_server_t* me, raft_node_id_t src, msg_appendentries_t* ae,
                          msg_appendentries_response_t* r);
int vr_recv_appendentries_response(raft_server_t* me, raft_node_id_t src,
                                   msg_appendentries_response_t* r);
int vr_recv_requestvote(raft_server_t* me, raft_node_id_t src, msg_requestvote_t* vr,
                        msg_requestvote_response_t* r);
int vr_recv_requestvote_response(raft_server_t* me, raft_node_id_t src,
                                 msg_requestvote_response_t* r);
int vr_recv_entry(raft_server_t* me, msg_entry_t* ety, msg_entry_response_t* r);
int vr_msg_entry_response_committed(raft_server_t* me, msg_entry_response_t* r);
int vr_begin_snapshot(raft_server_t* me);
int vr_end_snapshot(raft_server_t* me);
int vr_begin_load_snapshot(raft_server_t* me, raft_term_t term, raft_index_t idx);
int vr_end_load_snapshot(raft_server_t* me);
int vr_poke(int what);


extern "Python" int vr_py_send_requestvote(raft_server_t*, void*, raft_node_t*,
                                           msg_requestvote_t*);
extern "Python" int vr_py_send_appendentries(raft_server_t*, void*, raft_node_t*,
                                             msg_appendentries_t*);
extern "Python" int vr_py_send_snapshot(raft_server_t*, void*, raft_node_t*);
extern "Python" int vr_py_applylog(raft_server_t*, void*, raft_entry_t*, raft_index_t);
extern "Python" int vr_py_persist_vote(raft_server_t*, void*, raft_node_id_t);
extern "Python" int vr_py_persist_term(raft_server_t*, void*, raft_term_t, raft_node_id_t);
extern "Python" int vr_py_log_offer(raft_server_t*, void*, raft_entry_t*, raft_index_t);
extern "Python" int vr_py_log_poll(raft_server_t*, void*, raft_entry_t*, raft_index_t);
extern "Python" int vr_py_log_pop(raft_server_t*, void*, raft_entry_t*, raft_index_t);
extern "Python" int vr_py_log_clear(raft_server_t*, void*, raft_entry_t*, raft_index_t);
extern "Python" int vr_py_log_get_node_id(raft_server_t*, void*, raft_entry_t*, raft_index_t);
extern "Python" int vr_py_node_has_sufficient_logs(raft_server_t*, void*, raft_node_t*);
extern "Python" void vr_py_notify_membership_event(raft_server_t*, void*, raft_node_t*,
                                                   raft_entry_t*, int);
extern "Python+C" int virtraft_rand(void);
"""

PREAMBLE_OWN = r"""
#include "raft.h"

int virtraft_rand(void);

/* Callbacks: the library calls these, they call Python; a fault while
   Python runs is not the library's and must not jump over Python frames. */
static int vr_py_send_requestvote(raft_server_t*, void*, raft_node_t*, msg_requestvote_t*);
static int vr_py_send_appendentries(raft_server_t*, void*, raft_node_t*,
                                    msg_appendentries_t*);
static int vr_py_send_snapshot(raft_server_t*, void*, raft_node_t*);
static int vr_py_applylog(raft_server_t*, void*, raft_entry_t*, raft_index_t);
static int vr_py_persist_vote(raft_server_t*, void*, raft_node_id_t);
static int vr_py_persist_term(raft_server_t*, void*, raft_term_t, raft_node_id_t);
static int vr_py_log_offer(raft_server_t*, void*, raft_entry_t*, raft_index_t);
static int vr_py_log_poll(raft_server_t*, void*, raft_entry_t*, raft_index_t);
static int vr_py_log_pop(raft_server_t*, void*, raft_entry_t*, raft_index_t);
static int vr_py_log_clear(raft_server_t*, void*, raft_entry_t*, raft_index_t);
static int vr_py_log_get_node_id(raft_server_t*, void*, raft_entry_t*, raft_index_t);
static int vr_py_node_has_sufficient_logs(raft_server_t*, void*, raft_node_t*);
static void vr_py_notify_membership_event(raft_server_t*, void*, raft_node_t*,
                                          raft_entry_t*, int);

#define VR_TRAMPOLINE(name, args, call) \
    static int vr_c_##name args { int r; vr_in_python = 1; r = call; vr_in_python = 0; \
                                  return r; }
VR_TRAMPOLINE(send_requestvote, (raft_server_t* s, void* u, raft_node_t* n,
              msg_requestvote_t* m), vr_py_send_requestvote(s, u, n, m))
VR_TRAMPOLINE(send_appendentries, (raft_server_t* s, void* u, raft_node_t* n,
              msg_appendentries_t* m), vr_py_send_appendentries(s, u, n, m))
VR_TRAMPOLINE(send_snapshot, (raft_server_t* s, void* u, raft_node_t* n),
              vr_py_send_snapshot(s, u, n))
VR_TRAMPOLINE(applylog, (raft_server_t* s, void* u, raft_entry_t* e, raft_index_t i),
              vr_py_applylog(s, u, e, i))
VR_TRAMPOLINE(persist_vote, (raft_server_t* s, void* u, raft_node_id_t v),
              vr_py_persist_vote(s, u, v))
VR_TRAMPOLINE(persist_term, (raft_server_t* s, void* u, raft_term_t t, raft_node_id_t v),
              vr_py_persist_term(s, u, t, v))
VR_TRAMPOLINE(log_offer, (raft_server_t* s, void* u, raft_entry_t* e, raft_index_t i),
              vr_py_log_offer(s, u, e, i))
VR_TRAMPOLINE(log_poll, (raft_server_t* s, void* u, raft_entry_t* e, raft_index_t i),
              vr_py_log_poll(s, u, e, i))
VR_TRAMPOLINE(log_pop, (raft_server_t* s, void* u, raft_entry_t* e, raft_index_t i),
              vr_py_log_pop(s, u, e, i))
VR_TRAMPOLINE(log_clear, (raft_server_t* s, void* u, raft_entry_t* e, raft_index_t i),
              vr_py_log_clear(s, u, e, i))
VR_TRAMPOLINE(log_get_node_id, (raft_server_t* s, void* u, raft_entry_t* e, raft_index_t i),
              vr_py_log_get_node_id(s, u, e, i))
VR_TRAMPOLINE(node_has_sufficient_logs, (raft_server_t* s, void* u, raft_node_t* n),
              vr_py_node_has_sufficient_logs(s, u, n))
static void vr_c_notify_membership_event(raft_server_t* s, void* u, raft_node_t* n,
                                         raft_entry_t* e, raft_membership_e t)
{
    vr_in_python = 1; vr_py_notify_membership_event(s, u, n, e, (int)t); vr_in_python = 0;
}

void vr_scalars(raft_server_t* me, long *out)
{
    out[0] = raft_get_state(me);
    out[1] = raft_get_current_term(me);
    out[2] = raft_get_voted_for(me);
    out[3] = raft_get_commit_idx(me);
    out[4] = raft_get_current_idx(me);
    out[5] = raft_get_snapshot_last_idx(me);
}

raft_server_t* vr_new(void *udata, int election_timeout, int request_timeout)
{
    raft_cbs_t cbs;
    raft_server_t* me;
    sigjmp_buf vr_here; sigjmp_buf *vr_saved = vr_env;
    sig_atomic_t vr_saved_py = vr_in_python;
    if (sigsetjmp(vr_here, 0)) { vr_env = vr_saved; vr_in_python = vr_saved_py; return NULL; }
    vr_env = &vr_here; vr_in_python = 0;
    memset(&cbs, 0, sizeof cbs);
    cbs.send_requestvote = vr_c_send_requestvote;
    cbs.send_appendentries = vr_c_send_appendentries;
    cbs.send_snapshot = vr_c_send_snapshot;
    cbs.applylog = vr_c_applylog;
    cbs.persist_vote = vr_c_persist_vote;
    cbs.persist_term = vr_c_persist_term;
    cbs.log_offer = vr_c_log_offer;
    cbs.log_poll = vr_c_log_poll;
    cbs.log_pop = vr_c_log_pop;
    cbs.log_clear = vr_c_log_clear;
    cbs.log_get_node_id = vr_c_log_get_node_id;
    cbs.node_has_sufficient_logs = vr_c_node_has_sufficient_logs;
    cbs.notify_membership_event = vr_c_notify_membership_event;
    me = raft_new();
    if (me) {
        raft_set_callbacks(me, &cbs, udata);
        raft_set_election_timeout(me, election_timeout);
        raft_set_request_timeout(me, request_timeout);
    }
    VR_LEAVE
    return me;
}

int vr_free(raft_server_t* me) { VR_ENTER raft_free(me); VR_LEAVE return 0; }

int vr_add_node(raft_server_t* me, raft_node_id_t id, int is_self, int voting)
{
    raft_node_t* node;
    VR_ENTER
    node = voting ? raft_add_node(me, NULL, id, is_self)
                  : raft_add_non_voting_node(me, NULL, id, is_self);
    VR_LEAVE
    return node != NULL;
}

int vr_set_voting(raft_server_t* me, raft_node_id_t id, int voting)
{
    VR_ENTER raft_node_set_voting(raft_get_node(me, id), voting); VR_LEAVE return 0;
}

int vr_set_active(raft_server_t* me, raft_node_id_t id, int active)
{
    VR_ENTER raft_node_set_active(raft_get_node(me, id), active); VR_LEAVE return 0;
}

#define VR_INT_CALL(decl, call) \
    int decl { int vr_rc; VR_ENTER vr_rc = call; VR_LEAVE return vr_rc; }
VR_INT_CALL(vr_append_entry(raft_server_t* me, raft_entry_t* ety), raft_append_entry(me, ety))
VR_INT_CALL(vr_set_current_term(raft_server_t* me, raft_term_t term),
            raft_set_current_term(me, term))
int vr_become_follower(raft_server_t* me)
{
    VR_ENTER raft_become_follower(me); VR_LEAVE return 0;
}
VR_INT_CALL(vr_vote_for_nodeid(raft_server_t* me, raft_node_id_t id),
            raft_vote_for_nodeid(me, id))
VR_INT_CALL(vr_apply_all(raft_server_t* me), raft_apply_all(me))
VR_INT_CALL(vr_periodic(raft_server_t* me, int msec), raft_periodic(me, msec))
VR_INT_CALL(vr_recv_appendentries(raft_server_t* me, raft_node_id_t src,
                                  msg_appendentries_t* ae, msg_appendentries_response_t* r),
            raft_recv_appendentries(me, raft_get_node(me, src), ae, r))
VR_INT_CALL(vr_recv_appendentries_response(raft_server_t* me, raft_node_id_t src,
                                           msg_appendentries_response_t* r),
            raft_recv_appendentries_response(me, raft_get_node(me, src), r))
VR_INT_CALL(vr_recv_requestvote(raft_server_t* me, raft_node_id_t src, msg_requestvote_t* vr,
                                msg_requestvote_response_t* r),
            raft_recv_requestvote(me, raft_get_node(me, src), vr, r))
VR_INT_CALL(vr_recv_requestvote_response(raft_server_t* me, raft_node_id_t src,
                                         msg_requestvote_response_t* r),
            raft_recv_requestvote_response(me, raft_get_node(me, src), r))
VR_INT_CALL(vr_recv_entry(raft_server_t* me, msg_entry_t* ety, msg_entry_response_t* r),
            raft_recv_entry(me, ety, r))
VR_INT_CALL(vr_msg_entry_response_committed(raft_server_t* me, msg_entry_response_t* r),
            raft_msg_entry_response_committed(me, r))
VR_INT_CALL(vr_begin_snapshot(raft_server_t* me), raft_begin_snapshot(me, 0))
VR_INT_CALL(vr_end_snapshot(raft_server_t* me), raft_end_snapshot(me))
VR_INT_CALL(vr_begin_load_snapshot(raft_server_t* me, raft_term_t term, raft_index_t idx),
            raft_begin_load_snapshot(me, term, idx))
VR_INT_CALL(vr_end_load_snapshot(raft_server_t* me), raft_end_load_snapshot(me))

int vr_set_commit_idx(raft_server_t* me, raft_index_t idx)
{
    VR_ENTER raft_set_commit_idx(me, idx); VR_LEAVE return 0;
}

/* For tests of the fault path: 1 fails an assert, 2 dereferences NULL. */
int vr_poke(int what)
{
    volatile int *nowhere = NULL;
    int r = 0;
    VR_ENTER
    if (what == 1) {
        assert(what == 0);
    } else if (what == 2) {
        r = *nowhere;
    }
    VR_LEAVE
    return r;
}
"""

CDEF = native.FAULT_CDEF + CDEF_OWN
PREAMBLE = native.FAULT_C + PREAMBLE_OWN


def source_tree() -> Path:
    """The willemt/raft checkout VIRTRAFT_WILLEMT_SRC names, or a FactoryError."""
    value = os.environ.get(ENV_SRC)
    if not value:
        raise FactoryError(
            f"{ENV_SRC} is not set: point it at a checkout of github.com/willemt/raft "
            f"({ENV_SRC}=/path/to/raft)"
        )
    root = Path(value).expanduser()
    missing = [f"src/{name}" for name in SOURCES if not (root / "src" / name).is_file()]
    missing += [f"include/{name}" for name in HEADERS if not (root / "include" / name).is_file()]
    if missing:
        raise FactoryError(
            f"{ENV_SRC}={value} is not a willemt/raft source tree: it lacks {missing[0]}"
        )
    return root


def tree_hash(root: Path) -> str:
    """What the build depends on: the sources, our C and flags, the interpreter."""
    native.need_cffi("willemt/raft", "willemt")
    h = hashlib.sha256()
    for part in ("src", "include"):
        names = SOURCES if part == "src" else HEADERS
        for name in names:
            h.update(f"{part}/{name}\0".encode())
            h.update((root / part / name).read_bytes())
    for text in (
        CDEF,
        PREAMBLE,
        " ".join(CFLAGS),
        native.cffi.__version__,
        sys.version,
        platform.machine(),
    ):
        h.update(text.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def build(root: Path | None = None) -> Path:
    """Compile the library (once per source tree) and return the module's path."""
    root = root or source_tree()

    def compile_into(name: str, out: Path) -> None:
        ffi = native.cffi.FFI()
        ffi.cdef(CDEF)
        ffi.set_source(
            name,
            PREAMBLE,
            sources=[str(root / "src" / source) for source in SOURCES],
            include_dirs=[str(root / "include")],
            extra_compile_args=list(CFLAGS),
        )
        native.compile_ffi(ffi, out, f"willemt/raft from {root}")

    return native.cached_build("willemt", tree_hash(root), compile_into)


@functools.cache
def load() -> ModuleType:
    """The compiled module (its `ffi` and `lib`), built on first use."""
    return native.load_module(build(), "willemt/raft")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args:
        os.environ[ENV_SRC] = args[0]
    return native.build_main(build)


if __name__ == "__main__":
    raise SystemExit(main())
