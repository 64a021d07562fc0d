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

import contextlib
import fcntl
import hashlib
import importlib.util
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path
from types import ModuleType

from virtraft.adapter import FactoryError

try:  # the [willemt] extra: only this adapter needs it
    import cffi
except ImportError:  # pragma: no cover - reported when a build is asked for
    cffi = None

ENV_SRC = "VIRTRAFT_WILLEMT_SRC"
ENV_CACHE = "VIRTRAFT_CACHE_DIR"
SOURCES = ("raft_server.c", "raft_server_properties.c", "raft_node.c", "raft_log.c")
HEADERS = ("raft.h", "raft_types.h", "raft_private.h", "raft_log.h")

# Returned by a vr_* wrapper when the library asserted or faulted inside it.
FAULT = -7777

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

CDEF = r"""
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
#define VR_FAULT ...

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

extern int vr_fault;
extern int vr_fault_signal;
extern char vr_fault_text[600];
void vr_install_signal_handlers(void);

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

PREAMBLE = r"""
#include <assert.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "raft.h"

#define VR_FAULT (-7777)

int vr_fault = 0;            /* 1: an assert() failed, 2: a fatal signal */
int vr_fault_signal = 0;
char vr_fault_text[600];
static sigjmp_buf *vr_env = NULL;            /* innermost wrapper's jump target */
static volatile sig_atomic_t vr_in_python = 0; /* inside a Python callback */

int virtraft_rand(void);

void virtraft_assert_fail(const char *expr, const char *file, unsigned int line,
                          const char *func)
{
    const char *base = strrchr(file, '/');
    snprintf(vr_fault_text, sizeof vr_fault_text, "%s:%u: %s: Assertion `%s' failed",
             base ? base + 1 : file, line, func, expr);
    vr_fault = 1;
    if (vr_env && !vr_in_python)
        siglongjmp(*vr_env, 1);
    fprintf(stderr, "%s\n", vr_fault_text);
    abort();
}

static struct sigaction vr_previous[32];
static char vr_altstack[1 << 16];

static void vr_on_signal(int sig, siginfo_t *info, void *context)
{
    (void)info; (void)context;
    if (vr_env && !vr_in_python) {
        vr_fault = 2;
        vr_fault_signal = sig;
        siglongjmp(*vr_env, 1);
    }
    /* Not in library code: let the previous handler (or the default) have it. */
    sigaction(sig, &vr_previous[sig], NULL);
}

void vr_install_signal_handlers(void)
{
    static int installed = 0;
    int signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL};
    stack_t ss;
    struct sigaction sa;
    unsigned i;
    if (installed)
        return;
    installed = 1;
    ss.ss_sp = vr_altstack;
    ss.ss_size = sizeof vr_altstack;
    ss.ss_flags = 0;
    sigaltstack(&ss, NULL);
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = vr_on_signal;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    for (i = 0; i < sizeof signals / sizeof signals[0]; i++)
        sigaction(signals[i], &sa, &vr_previous[signals[i]]);
}

/* Enter library code: a fault anywhere below returns VR_FAULT from here. */
#define VR_ENTER \
    sigjmp_buf vr_here; sigjmp_buf *vr_saved = vr_env; \
    sig_atomic_t vr_saved_py = vr_in_python; \
    if (sigsetjmp(vr_here, 0)) { vr_env = vr_saved; vr_in_python = vr_saved_py; \
                                 return VR_FAULT; } \
    vr_env = &vr_here; vr_in_python = 0;
#define VR_LEAVE vr_env = vr_saved; vr_in_python = vr_saved_py;

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
    _need_cffi()
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
        cffi.__version__,
        sys.version,
        platform.machine(),
    ):
        h.update(text.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def cache_dir() -> Path:
    """VIRTRAFT_CACHE_DIR, else virtraft/ under the user's cache directory."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE])
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "virtraft"


def module_name(digest: str) -> str:
    return f"_virtraft_willemt_{digest}"


def build(root: Path | None = None) -> Path:
    """Compile the library (once per source tree) and return the module's path."""
    root = root or source_tree()
    digest = tree_hash(root)
    out = cache_dir() / f"willemt-{digest}"
    name = module_name(digest)
    found = _built(out, name)
    if found is not None:
        return found
    out.parent.mkdir(parents=True, exist_ok=True)
    lock_path = out.parent / f"willemt-{digest}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # campaign workers build at most once
        found = _built(out, name)
        if found is not None:
            return found
        _compile(root, name, out)
    found = _built(out, name)
    if found is None:
        raise FactoryError(f"building willemt/raft from {root} produced no module")
    return found


def _built(out: Path, name: str) -> Path | None:
    if not out.is_dir():
        return None
    for path in sorted(out.glob(f"{name}*.so")):
        return path
    return None


def _need_cffi() -> None:
    if cffi is None:
        raise FactoryError("the willemt/raft adapter needs cffi: pip install 'virtraft[willemt]'")


def _compile(root: Path, name: str, out: Path) -> None:
    _need_cffi()
    ffi = cffi.FFI()
    ffi.cdef(CDEF)
    ffi.set_source(
        name,
        PREAMBLE,
        sources=[str(root / "src" / source) for source in SOURCES],
        include_dirs=[str(root / "include")],
        extra_compile_args=list(CFLAGS),
    )
    work = Path(tempfile.mkdtemp(prefix="willemt-build-", dir=out.parent))
    try:
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
            built = Path(ffi.compile(tmpdir=str(work), verbose=False))
        staging = Path(tempfile.mkdtemp(prefix="willemt-ready-", dir=out.parent))
        shutil.copy2(built, staging / built.name)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except Exception as exc:  # a compiler error: one line, with where to look
        raise FactoryError(
            f"cannot build willemt/raft from {root}: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)


_LOADED: ModuleType | None = None


def load() -> ModuleType:
    """The compiled module (its `ffi` and `lib`), built on first use."""
    global _LOADED
    if _LOADED is not None:
        return _LOADED
    path = build()
    name = path.name.split(".", 1)[0]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise FactoryError(f"cannot load the willemt/raft module at {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.lib.vr_install_signal_handlers()
    _LOADED = module
    return module


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args:
        os.environ[ENV_SRC] = args[0]
    try:
        path = build()
    except FactoryError as exc:
        sys.stderr.write(f"virtraft: error: {exc}\n")
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
