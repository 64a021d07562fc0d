"""Build the canonical/raft adapter's C side with cffi, against the installed
library (Debian's `libraft-dev`: `/usr/include/raft.h`, `-lraft`).

The library is the packaged one, not a source tree: what we compile is our
own C, a `raft_io` backend and a `raft_fsm` whose every method calls back
into Python (the simulator's node), plus `vr_*` entry wrappers through which
every call into the library goes. The module is cached (see `native`) under
a digest of our C, the header and the library file, so an upgrade of the
package rebuilds it. `python -m virtraft.nodes.canonical_build` builds ahead
of time and prints where the module is.

Faults: Debian builds the library with NDEBUG, so its `assert()`s are
compiled out; a fatal signal inside library code (SIGSEGV, SIGABRT, ...)
is caught by `native.FAULT_C` and returned as `VR_FAULT` from the wrapper
the call came in through. Our I/O callbacks run Python and mark it, so a
fault there is never blamed on the library.
"""

from __future__ import annotations

import functools
import hashlib
import platform
import sys
from pathlib import Path
from types import ModuleType

from virtraft.adapter import FactoryError
from virtraft.nodes import native

HEADER = Path("/usr/include/raft.h")
LIBRARY_DIRS = (
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib",
    "/usr/local/lib",
)

CDEF_OWN = r"""
typedef unsigned long long raft_id;
typedef unsigned long long raft_term;
typedef unsigned long long raft_index;
typedef unsigned long long raft_time;

#define RAFT_COMMAND ...
#define RAFT_BARRIER ...
#define RAFT_CHANGE ...
#define RAFT_STANDBY ...
#define RAFT_VOTER ...
#define RAFT_SPARE ...
#define RAFT_UNAVAILABLE ...
#define RAFT_FOLLOWER ...
#define RAFT_CANDIDATE ...
#define RAFT_LEADER ...
#define RAFT_NOTLEADER ...
#define RAFT_CANTBOOTSTRAP ...
#define RAFT_CANCELED ...
#define RAFT_NOTFOUND ...
#define RAFT_IO_APPEND_ENTRIES ...
#define RAFT_IO_APPEND_ENTRIES_RESULT ...
#define RAFT_IO_REQUEST_VOTE ...
#define RAFT_IO_REQUEST_VOTE_RESULT ...
#define RAFT_IO_INSTALL_SNAPSHOT ...
#define RAFT_IO_TIMEOUT_NOW ...

struct raft_buffer { void *base; size_t len; };
struct raft_server { raft_id id; char *address; int role; };
struct raft_configuration { struct raft_server *servers; unsigned n; };
struct raft_entry { raft_term term; unsigned short type; struct raft_buffer buf; void *batch; };
struct raft_request_vote {
    raft_term term; raft_id candidate_id; raft_index last_log_index;
    raft_index last_log_term; bool disrupt_leader; bool pre_vote;
};
struct raft_request_vote_result { raft_term term; bool vote_granted; int pre_vote; };
struct raft_append_entries {
    raft_term term; raft_index prev_log_index; raft_term prev_log_term;
    raft_index leader_commit; struct raft_entry *entries; unsigned n_entries;
};
struct raft_append_entries_result {
    raft_term term; raft_index rejected; raft_index last_log_index;
};
struct raft_install_snapshot {
    raft_term term; raft_index last_index; raft_term last_term;
    struct raft_configuration conf; raft_index conf_index; struct raft_buffer data;
};
struct raft_timeout_now { raft_term term; raft_index last_log_index; raft_index last_log_term; };
struct raft_message {
    unsigned short type; raft_id server_id; const char *server_address;
    union {
        struct raft_request_vote request_vote;
        struct raft_request_vote_result request_vote_result;
        struct raft_append_entries append_entries;
        struct raft_append_entries_result append_entries_result;
        struct raft_install_snapshot install_snapshot;
        struct raft_timeout_now timeout_now;
    };
};
struct raft_snapshot {
    raft_index index; raft_term term; struct raft_configuration configuration;
    raft_index configuration_index; struct raft_buffer *bufs; unsigned n_bufs;
};
struct raft_io_send { void *data; ...; };
struct raft_io_append { void *data; ...; };
struct raft_io_snapshot_put { void *data; ...; };
struct raft_io_snapshot_get { void *data; ...; };

struct vr_node { raft_time now; ...; };

void *raft_malloc(size_t size);
void raft_free(void *ptr);
const char *raft_strerror(int errnum);

/* Plain C, no library logic: safe to call from inside an I/O callback. */
struct raft_entry *vr_make_entries(unsigned n, const raft_term *terms,
                                   const unsigned short *types, const size_t *lens,
                                   const char *data);
struct raft_snapshot *vr_make_snapshot(raft_index index, raft_term term,
                                       raft_index conf_index, unsigned n,
                                       const raft_id *ids, const int *roles,
                                       const char *data, size_t len);
int vr_make_configuration(struct raft_configuration *c, unsigned n, const raft_id *ids,
                          const int *roles);
void *vr_copy(const char *data, size_t len);
int vr_encode_configuration(const struct raft_configuration *c, struct raft_buffer *out);
int vr_decode_configuration(const struct raft_buffer *buf, unsigned max, raft_id *ids,
                            int *roles);

/* Views, read directly: none of them changes anything. */
void vr_scalars(struct vr_node *n, unsigned long long *out);
int vr_entry(struct vr_node *n, raft_index index, raft_term *term, unsigned long long *id,
             unsigned short *type);
unsigned vr_members(struct vr_node *n, unsigned max, raft_id *ids, int *roles);
raft_id vr_leader(struct vr_node *n);
raft_index vr_last_applied(struct vr_node *n);
raft_index vr_last_stored(struct vr_node *n);
void vr_set_snapshot_threshold(struct vr_node *n, unsigned threshold);

/* Everything that runs library code goes through a vr_* wrapper. */
struct vr_node *vr_node_new(void *handle, raft_id id, unsigned election_timeout,
                            unsigned heartbeat_timeout, bool pre_vote,
                            unsigned snapshot_threshold, unsigned snapshot_trailing,
                            unsigned install_snapshot_timeout);
int vr_bootstrap(struct vr_node *n, unsigned count, const raft_id *ids);
int vr_start(struct vr_node *n);
int vr_tick(struct vr_node *n);
int vr_recv(struct vr_node *n, struct raft_message *m);
int vr_apply(struct vr_node *n, const char *data, size_t len, raft_index *index);
int vr_add(struct vr_node *n, raft_id id);
int vr_assign(struct vr_node *n, raft_id id, int role);
int vr_remove(struct vr_node *n, raft_id id);
int vr_close(struct vr_node *n);
int vr_fire_close(struct vr_node *n);
void vr_node_free(struct vr_node *n);
int vr_fire_send(struct raft_io_send *req, int status);
int vr_fire_append(struct raft_io_append *req, int status);
int vr_fire_put(struct raft_io_snapshot_put *req, int status);
int vr_fire_get(struct raft_io_snapshot_get *req, struct raft_snapshot *s, int status);
int vr_poke(int what);

extern "Python" int vr_py_load(void *, raft_term *, raft_id *, struct raft_snapshot **,
                               raft_index *, struct raft_entry **, size_t *);
extern "Python" int vr_py_bootstrap(void *, const struct raft_configuration *);
extern "Python" int vr_py_set_term(void *, raft_term);
extern "Python" int vr_py_set_vote(void *, raft_id);
extern "Python" int vr_py_send(void *, struct raft_io_send *, const struct raft_message *);
extern "Python" int vr_py_append(void *, struct raft_io_append *, const struct raft_entry *,
                                 unsigned);
extern "Python" int vr_py_truncate(void *, raft_index);
extern "Python" int vr_py_snapshot_put(void *, unsigned, struct raft_io_snapshot_put *,
                                       const struct raft_snapshot *);
extern "Python" int vr_py_snapshot_get(void *, struct raft_io_snapshot_get *);
extern "Python" int vr_py_random(void *, int, int);
extern "Python" int vr_py_fsm_apply(void *, const struct raft_buffer *);
extern "Python" int vr_py_fsm_snapshot(void *, struct raft_buffer **, unsigned *);
extern "Python" int vr_py_fsm_restore(void *, struct raft_buffer *);
"""

PREAMBLE_OWN = r"""
#include <raft.h>

struct vr_node {
    raft_time now;            /* the virtual clock, set by Python before each call */
    struct raft raft;
    struct raft_io io;
    struct raft_fsm fsm;
    void *handle;             /* the Python node */
    raft_io_tick_cb tick_cb;
    raft_io_recv_cb recv_cb;
    raft_io_close_cb close_cb;
};

static int vr_py_load(void *, raft_term *, raft_id *, struct raft_snapshot **, raft_index *,
                      struct raft_entry **, size_t *);
static int vr_py_bootstrap(void *, const struct raft_configuration *);
static int vr_py_set_term(void *, raft_term);
static int vr_py_set_vote(void *, raft_id);
static int vr_py_send(void *, struct raft_io_send *, const struct raft_message *);
static int vr_py_append(void *, struct raft_io_append *, const struct raft_entry *, unsigned);
static int vr_py_truncate(void *, raft_index);
static int vr_py_snapshot_put(void *, unsigned, struct raft_io_snapshot_put *,
                              const struct raft_snapshot *);
static int vr_py_snapshot_get(void *, struct raft_io_snapshot_get *);
static int vr_py_random(void *, int, int);
static int vr_py_fsm_apply(void *, const struct raft_buffer *);
static int vr_py_fsm_snapshot(void *, struct raft_buffer **, unsigned *);
static int vr_py_fsm_restore(void *, struct raft_buffer *);

#define VR_NODE(io) ((struct vr_node *)(io)->impl)
#define VR_CALL(expr) do { VR_PY(rv = (expr)); } while (0)

/* ------------------------------------------------------------ raft_io */

static int vr_io_init(struct raft_io *io, raft_id id, const char *address)
{ (void)io; (void)id; (void)address; return 0; }

static void vr_io_close(struct raft_io *io, raft_io_close_cb cb)
{ VR_NODE(io)->close_cb = cb; /* Python cancels what is pending, then fires it */ }

static int vr_io_load(struct raft_io *io, raft_term *term, raft_id *vote,
                      struct raft_snapshot **snapshot, raft_index *start,
                      struct raft_entry *entries[], size_t *n)
{ int rv; VR_CALL(vr_py_load(VR_NODE(io)->handle, term, vote, snapshot, start, entries, n));
  return rv; }

static int vr_io_start(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick,
                       raft_io_recv_cb recv)
{ (void)msecs; VR_NODE(io)->tick_cb = tick; VR_NODE(io)->recv_cb = recv; return 0; }

static int vr_io_bootstrap(struct raft_io *io, const struct raft_configuration *conf)
{ int rv; VR_CALL(vr_py_bootstrap(VR_NODE(io)->handle, conf)); return rv; }

static int vr_io_recover(struct raft_io *io, const struct raft_configuration *conf)
{ (void)io; (void)conf; return RAFT_NOTFOUND; }

static int vr_io_set_term(struct raft_io *io, raft_term term)
{ int rv; VR_CALL(vr_py_set_term(VR_NODE(io)->handle, term)); return rv; }

static int vr_io_set_vote(struct raft_io *io, raft_id id)
{ int rv; VR_CALL(vr_py_set_vote(VR_NODE(io)->handle, id)); return rv; }

static int vr_io_send(struct raft_io *io, struct raft_io_send *req,
                      const struct raft_message *m, raft_io_send_cb cb)
{ int rv; req->cb = cb; VR_CALL(vr_py_send(VR_NODE(io)->handle, req, m)); return rv; }

static int vr_io_append(struct raft_io *io, struct raft_io_append *req,
                        const struct raft_entry entries[], unsigned n, raft_io_append_cb cb)
{ int rv; req->cb = cb; VR_CALL(vr_py_append(VR_NODE(io)->handle, req, entries, n));
  return rv; }

static int vr_io_truncate(struct raft_io *io, raft_index index)
{ int rv; VR_CALL(vr_py_truncate(VR_NODE(io)->handle, index)); return rv; }

static int vr_io_snapshot_put(struct raft_io *io, unsigned trailing,
                              struct raft_io_snapshot_put *req,
                              const struct raft_snapshot *s, raft_io_snapshot_put_cb cb)
{ int rv; req->cb = cb; VR_CALL(vr_py_snapshot_put(VR_NODE(io)->handle, trailing, req, s));
  return rv; }

static int vr_io_snapshot_get(struct raft_io *io, struct raft_io_snapshot_get *req,
                              raft_io_snapshot_get_cb cb)
{ int rv; req->cb = cb; VR_CALL(vr_py_snapshot_get(VR_NODE(io)->handle, req)); return rv; }

static raft_time vr_io_time(struct raft_io *io) { return VR_NODE(io)->now; }

static int vr_io_random(struct raft_io *io, int min, int max)
{ int rv; VR_CALL(vr_py_random(VR_NODE(io)->handle, min, max)); return rv; }

/* ------------------------------------------------------------ raft_fsm */

static int vr_fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{ int rv; *result = NULL; VR_CALL(vr_py_fsm_apply(fsm->data, buf)); return rv; }

static int vr_fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n)
{ int rv; VR_CALL(vr_py_fsm_snapshot(fsm->data, bufs, n)); return rv; }

static int vr_fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{ int rv; VR_CALL(vr_py_fsm_restore(fsm->data, buf)); return rv; }

/* ------------------------------------------------------------ helpers */

struct raft_entry *vr_make_entries(unsigned n, const raft_term *terms,
                                   const unsigned short *types, const size_t *lens,
                                   const char *data)
{
    size_t total = 0, at = 0;
    unsigned i;
    struct raft_entry *entries;
    char *batch;
    if (n == 0)
        return NULL;
    for (i = 0; i < n; i++)
        total += lens[i];
    entries = raft_malloc(n * sizeof *entries);
    batch = raft_malloc(total ? total : 1);
    memcpy(batch, data, total);
    for (i = 0; i < n; i++) {
        entries[i].term = terms[i];
        entries[i].type = types[i];
        entries[i].buf.base = batch + at;
        entries[i].buf.len = lens[i];
        entries[i].batch = batch;
        at += lens[i];
    }
    return entries;
}

int vr_make_configuration(struct raft_configuration *c, unsigned n, const raft_id *ids,
                          const int *roles)
{
    unsigned i;
    char address[32];
    raft_configuration_init(c);
    for (i = 0; i < n; i++) {
        int rv;
        snprintf(address, sizeof address, "%llu", ids[i]);
        rv = raft_configuration_add(c, ids[i], address, roles[i]);
        if (rv != 0)
            return rv;
    }
    return 0;
}

void *vr_copy(const char *data, size_t len)
{
    void *out = raft_malloc(len ? len : 1);
    memcpy(out, data, len);
    return out;
}

struct raft_snapshot *vr_make_snapshot(raft_index index, raft_term term,
                                       raft_index conf_index, unsigned n,
                                       const raft_id *ids, const int *roles,
                                       const char *data, size_t len)
{
    struct raft_snapshot *s = raft_malloc(sizeof *s);
    memset(s, 0, sizeof *s);
    s->index = index;
    s->term = term;
    s->configuration_index = conf_index;
    vr_make_configuration(&s->configuration, n, ids, roles);
    s->bufs = raft_malloc(sizeof *s->bufs);
    s->bufs[0].base = vr_copy(data, len);
    s->bufs[0].len = len;
    s->n_bufs = 1;
    return s;
}

int vr_encode_configuration(const struct raft_configuration *c, struct raft_buffer *out)
{ return raft_configuration_encode(c, out); }

/* The configuration encoding (configuration.c): format byte, u64 count, then
   per server u64 id, NUL-terminated address, u8 role. */
int vr_decode_configuration(const struct raft_buffer *buf, unsigned max, raft_id *ids,
                            int *roles)
{
    const unsigned char *p = buf->base, *end = p + buf->len;
    unsigned long long count = 0;
    unsigned i;
    if (buf->len < 9 || p[0] != 1)
        return -1;
    memcpy(&count, p + 1, 8);
    p += 9;
    for (i = 0; i < count && i < max; i++) {
        if (p + 8 > end)
            return -1;
        memcpy(&ids[i], p, 8);
        p += 8;
        while (p < end && *p)
            p++;
        p++;
        if (p >= end)
            return -1;
        roles[i] = *p++;
    }
    return (int)i;
}

/* The circular buffer lookup of log.c (locateEntry), on the public struct. */
static const struct raft_entry *vr_log_get(struct raft_log *l, raft_index index)
{
    size_t n = l->front <= l->back ? l->back - l->front : l->size - l->front + l->back;
    if (n == 0 || index < l->offset + 1 || index > l->offset + n)
        return NULL;
    return &l->entries[(l->front + (size_t)(index - 1 - l->offset)) % l->size];
}

void vr_scalars(struct vr_node *n, unsigned long long *out)
{
    struct raft *r = &n->raft;
    struct raft_log *l = &r->log;
    size_t count = l->front <= l->back ? l->back - l->front : l->size - l->front + l->back;
    out[0] = r->state;
    out[1] = r->current_term;
    out[2] = r->voted_for;
    out[3] = r->commit_index;
    out[4] = l->offset + count;
    out[5] = l->snapshot.last_index;
    out[6] = l->snapshot.last_term;
    out[7] = r->state == RAFT_CANDIDATE && r->candidate_state.in_pre_vote;
}

int vr_entry(struct vr_node *n, raft_index index, raft_term *term, unsigned long long *id,
             unsigned short *type)
{
    const struct raft_entry *e = vr_log_get(&n->raft.log, index);
    if (e == NULL)
        return 0;
    *term = e->term;
    *type = e->type;
    *id = 0;
    if (e->type == RAFT_COMMAND && e->buf.len >= 8)
        memcpy(id, e->buf.base, 8);
    return 1;
}

unsigned vr_members(struct vr_node *n, unsigned max, raft_id *ids, int *roles)
{
    struct raft_configuration *c = &n->raft.configuration;
    unsigned i;
    for (i = 0; i < c->n && i < max; i++) {
        ids[i] = c->servers[i].id;
        roles[i] = c->servers[i].role;
    }
    return i;
}

raft_id vr_leader(struct vr_node *n)
{
    raft_id id = 0;
    const char *address = NULL;
    if (n->raft.state == RAFT_UNAVAILABLE)
        return 0;
    raft_leader(&n->raft, &id, &address);
    return id;
}

raft_index vr_last_applied(struct vr_node *n) { return n->raft.last_applied; }
raft_index vr_last_stored(struct vr_node *n) { return n->raft.last_stored; }
void vr_set_snapshot_threshold(struct vr_node *n, unsigned threshold)
{ raft_set_snapshot_threshold(&n->raft, threshold); }

/* ------------------------------------------------------------ wrappers */

struct vr_node *vr_node_new(void *handle, raft_id id, unsigned election_timeout,
                            unsigned heartbeat_timeout, bool pre_vote,
                            unsigned snapshot_threshold, unsigned snapshot_trailing,
                            unsigned install_snapshot_timeout)
{
    struct vr_node *n = calloc(1, sizeof *n);
    char address[32];
    int rv;
    n->handle = handle;
    n->io.version = 1;
    n->io.impl = n;
    n->io.init = vr_io_init;
    n->io.close = vr_io_close;
    n->io.load = vr_io_load;
    n->io.start = vr_io_start;
    n->io.bootstrap = vr_io_bootstrap;
    n->io.recover = vr_io_recover;
    n->io.set_term = vr_io_set_term;
    n->io.set_vote = vr_io_set_vote;
    n->io.send = vr_io_send;
    n->io.append = vr_io_append;
    n->io.truncate = vr_io_truncate;
    n->io.snapshot_put = vr_io_snapshot_put;
    n->io.snapshot_get = vr_io_snapshot_get;
    n->io.time = vr_io_time;
    n->io.random = vr_io_random;
    n->fsm.version = 1;
    n->fsm.data = handle;
    n->fsm.apply = vr_fsm_apply;
    n->fsm.snapshot = vr_fsm_snapshot;
    n->fsm.restore = vr_fsm_restore;
    snprintf(address, sizeof address, "%llu", id);
    {
        VR_ENTER
        rv = raft_init(&n->raft, &n->io, &n->fsm, id, address);
        if (rv == 0) {
            raft_set_election_timeout(&n->raft, election_timeout);
            raft_set_heartbeat_timeout(&n->raft, heartbeat_timeout);
            raft_set_pre_vote(&n->raft, pre_vote);
            raft_set_snapshot_threshold(&n->raft, snapshot_threshold);
            raft_set_snapshot_trailing(&n->raft, snapshot_trailing);
            raft_set_install_snapshot_timeout(&n->raft, install_snapshot_timeout);
        }
        VR_LEAVE
    }
    if (rv != 0) {
        free(n);
        return NULL;
    }
    return n;
}

void vr_node_free(struct vr_node *n) { free(n); }

int vr_bootstrap(struct vr_node *n, unsigned count, const raft_id *ids)
{
    struct raft_configuration c;
    int rv;
    unsigned i;
    VR_ENTER
    raft_configuration_init(&c);
    rv = 0;
    for (i = 0; i < count && rv == 0; i++) {
        char address[32];
        snprintf(address, sizeof address, "%llu", ids[i]);
        rv = raft_configuration_add(&c, ids[i], address, RAFT_VOTER);
    }
    if (rv == 0)
        rv = raft_bootstrap(&n->raft, &c);
    raft_configuration_close(&c);
    VR_LEAVE
    return rv;
}

#define VR_WRAP(decl, body) int decl { int rv; VR_ENTER body; VR_LEAVE return rv; }
VR_WRAP(vr_start(struct vr_node *n), rv = raft_start(&n->raft))
VR_WRAP(vr_tick(struct vr_node *n), n->tick_cb(&n->io); rv = 0)
VR_WRAP(vr_recv(struct vr_node *n, struct raft_message *m), n->recv_cb(&n->io, m); rv = 0)
VR_WRAP(vr_close(struct vr_node *n), raft_close(&n->raft, NULL); rv = 0)
VR_WRAP(vr_fire_close(struct vr_node *n), if (n->close_cb) n->close_cb(&n->io); rv = 0)
VR_WRAP(vr_fire_send(struct raft_io_send *req, int status), req->cb(req, status); rv = 0)
VR_WRAP(vr_fire_append(struct raft_io_append *req, int status), req->cb(req, status); rv = 0)
VR_WRAP(vr_fire_put(struct raft_io_snapshot_put *req, int status), req->cb(req, status); rv = 0)
VR_WRAP(vr_fire_get(struct raft_io_snapshot_get *req, struct raft_snapshot *s, int status),
        req->cb(req, s, status); rv = 0)

static void vr_apply_done(struct raft_apply *req, int status, void *result)
{ (void)status; (void)result; free(req); }
static void vr_change_done(struct raft_change *req, int status) { (void)status; free(req); }

int vr_apply(struct vr_node *n, const char *data, size_t len, raft_index *index)
{
    struct raft_apply *req = calloc(1, sizeof *req);
    struct raft_buffer buf;
    int rv;
    buf.base = vr_copy(data, len);
    buf.len = len;
    {
        VR_ENTER
        rv = raft_apply(&n->raft, req, &buf, 1, vr_apply_done);
        VR_LEAVE
    }
    if (rv == 0) {
        *index = req->index;
    } else {
        if (rv == RAFT_NOTLEADER)
            raft_free(buf.base);  /* not appended: still ours */
        free(req);
    }
    return rv;
}

#define VR_CHANGE(decl, call) \
    int decl { struct raft_change *req = calloc(1, sizeof *req); int rv; \
               { VR_ENTER rv = call; VR_LEAVE } if (rv != 0) free(req); return rv; }
VR_CHANGE(vr_add(struct vr_node *n, raft_id id), ({ char a[32];
          snprintf(a, sizeof a, "%llu", id); raft_add(&n->raft, req, id, a, vr_change_done); }))
VR_CHANGE(vr_assign(struct vr_node *n, raft_id id, int role),
          raft_assign(&n->raft, req, id, role, vr_change_done))
VR_CHANGE(vr_remove(struct vr_node *n, raft_id id), raft_remove(&n->raft, req, id, vr_change_done))

/* For tests of the fault path: 2 dereferences NULL. */
int vr_poke(int what)
{
    volatile int *nowhere = NULL;
    int r = 0;
    VR_ENTER
    if (what == 2)
        r = *nowhere;
    VR_LEAVE
    return r;
}
"""

CDEF = native.FAULT_CDEF + CDEF_OWN
PREAMBLE = native.FAULT_C + PREAMBLE_OWN
CFLAGS = ("-O2", "-g", "-w", "-fno-strict-aliasing")


def library_file() -> Path | None:
    for directory in LIBRARY_DIRS:
        for name in ("libraft.so", "libraft.a"):
            path = Path(directory) / name
            if path.exists():
                return path
    return None


def installed() -> str | None:
    """None when the library and its header are installed, else why not."""
    if not HEADER.is_file():
        return f"{HEADER} is missing: install canonical/raft (apt-get install libraft-dev)"
    if library_file() is None:
        return "libraft.so is missing: install canonical/raft (apt-get install libraft-dev)"
    if native.cffi is None:
        return "cffi is missing: pip install 'virtraft[canonical]'"
    return None


def digest() -> str:
    """What the build depends on: our C, the header, the library, the interpreter."""
    library = library_file()
    assert library is not None
    h = hashlib.sha256()
    for text in (CDEF, PREAMBLE, " ".join(CFLAGS), native.cffi.__version__, sys.version):
        h.update(text.encode())
        h.update(b"\0")
    h.update(HEADER.read_bytes())
    stat = library.resolve().stat()
    h.update(f"{library.resolve()}:{stat.st_size}:{platform.machine()}".encode())
    return h.hexdigest()[:16]


def build() -> Path:
    """Compile our C against the installed library (once) and return the module."""
    why = installed()
    if why is not None:
        raise FactoryError(f"the canonical/raft adapter cannot be built: {why}")

    def compile_into(name: str, out: Path) -> None:
        ffi = native.cffi.FFI()
        ffi.cdef(CDEF)
        ffi.set_source(
            name,
            PREAMBLE,
            libraries=["raft"],
            extra_compile_args=list(CFLAGS),
        )
        native.compile_ffi(ffi, out, "the canonical/raft adapter")

    return native.cached_build("canonical", digest(), compile_into)


@functools.cache
def load() -> ModuleType:
    """The compiled module (its `ffi` and `lib`), built on first use."""
    return native.load_module(build(), "canonical/raft")


def main(argv: list[str] | None = None) -> int:
    del argv
    return native.build_main(build)


if __name__ == "__main__":
    raise SystemExit(main())
