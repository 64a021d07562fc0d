"""What every C library behind the door shares: a cached cffi build, and
asserts and fatal signals turned into return codes.

Each C adapter (`willemt_build`, `canonical_build`) compiles one cffi
module in API mode and caches it under a directory keyed by a digest of
everything the build depends on, so every process of a campaign reuses one
build (a file lock makes workers build at most once).

`FAULT_C` is the C both adapters put in front of their own: an
`assert()` failure (glibc's `__assert_fail`, renamed by `-D` to ours) or a
fatal signal inside library code records what happened and `siglongjmp`s
back to the entry wrapper the call came in through (`VR_ENTER` ...
`VR_LEAVE`), which returns `VR_FAULT`; Python raises that as an exception.
A signal while a Python callback runs is not the library's: the handler
then hands it to the previous handler.

`NativeNode` is what both adapters' nodes share around a library call
(entering it, raising what it left behind); `node_factory` makes their
factories (and PySyncObj's), and `build_main` their build modules'
command line.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import random
import shutil
import signal
import sys
import tempfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

from virtraft.adapter import (
    FactoryError,
    Membership,
    MessageRole,
    Messages,
    NodeAdapter,
    NodeOptions,
    Send,
)

try:  # an extra ([willemt], [canonical]): only the C adapters need it
    import cffi
except ImportError:  # pragma: no cover - reported when a build is asked for
    cffi = None

ENV_CACHE = "VIRTRAFT_CACHE_DIR"

# Returned by a vr_* wrapper when the library asserted or faulted inside it.
FAULT = -7777

FAULT_CDEF = r"""
#define VR_FAULT ...
extern int vr_fault;
extern int vr_fault_signal;
extern char vr_fault_text[600];
void vr_install_signal_handlers(void);
"""

FAULT_C = r"""
#include <assert.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VR_FAULT (-7777)

int vr_fault = 0;            /* 1: an assert() failed, 2: a fatal signal */
int vr_fault_signal = 0;
char vr_fault_text[600];
static sigjmp_buf *vr_env = NULL;            /* innermost wrapper's jump target */
static volatile sig_atomic_t vr_in_python = 0; /* inside a Python callback */

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
    int signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
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
/* Around a call into Python from library code. */
#define VR_PY(call) do { sig_atomic_t vr_was = vr_in_python; vr_in_python = 1; call; \
                         vr_in_python = vr_was; } while (0)
"""


def cache_dir() -> Path:
    """VIRTRAFT_CACHE_DIR, else virtraft/ under the user's cache directory."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE])
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "virtraft"


def need_cffi(label: str, extra: str) -> None:
    if cffi is None:
        raise FactoryError(f"the {label} adapter needs cffi: pip install 'virtraft[{extra}]'")


def cached_build(prefix: str, digest: str, compile_into: Callable[[str, Path], None]) -> Path:
    """The module `_virtraft_{prefix}_{digest}`, compiled by `compile_into(name,
    out)` once per digest (under a lock: campaign workers build at most once)."""
    out = cache_dir() / f"{prefix}-{digest}"
    name = f"_virtraft_{prefix}_{digest}"
    found = _built(out, name)
    if found is not None:
        return found
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f"{prefix}-{digest}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = _built(out, name)
        if found is not None:
            return found
        compile_into(name, out)
    found = _built(out, name)
    if found is None:
        raise FactoryError(f"building {prefix} produced no module")
    return found


def _built(out: Path, name: str) -> Path | None:
    if not out.is_dir():
        return None
    for path in sorted(out.glob(f"{name}*.so")):
        return path
    return None


def compile_ffi(ffi: object, out: Path, what: str) -> None:
    """Compile a configured `cffi.FFI` into `out` (atomically: a rename), or
    a one-line FactoryError naming `what` and the compiler's first line."""
    work = Path(tempfile.mkdtemp(prefix="build-", dir=out.parent))
    try:
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
            built = Path(ffi.compile(tmpdir=str(work), verbose=False))  # type: ignore[attr-defined]
        staging = Path(tempfile.mkdtemp(prefix="ready-", dir=out.parent))
        shutil.copy2(built, staging / built.name)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except Exception as exc:  # a compiler error: one line, with where to look
        raise FactoryError(
            f"cannot build {what}: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def load_module(path: Path, what: str) -> ModuleType:
    """Import a compiled module and install its fault handlers."""
    name = path.name.split(".", 1)[0]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise FactoryError(f"cannot load the {what} module at {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.lib.vr_install_signal_handlers()
    return module


def build_main(build: Callable[[], Path]) -> int:
    """A build module's `main`: build now and print the module's path, or
    one line on stderr and exit code 2."""
    try:
        path = build()
    except FactoryError as exc:
        sys.stderr.write(f"virtraft: error: {exc}\n")
        return 2
    print(path)
    return 0


# ------------------------------------------------------- around a library call


class NativeFault(Exception):
    """The library failed an assert() or took a fatal signal inside a call."""


class Running:
    """The node whose library call is running. One call runs at a time in a
    process, whatever the library: a callback without a handle (willemt's
    rand()) finds its node here, and an exception a callback raises, which
    cannot cross the C frames, is kept on that node and raised once the
    call returns (cffi's `onerror`)."""

    __slots__ = ("node",)

    def __init__(self) -> None:
        self.node: Any = None

    def callback_failed(self, exception: type, value: BaseException, traceback: object) -> None:
        node = self.node
        if node is not None and node._error is None:
            node._error = value


RUNNING = Running()


class NativeNode(NodeAdapter):
    """A server inside a C library: a fault in a call breaks it for good,
    and a callback's exception is raised when the call returns."""

    # Plain fields, not properties: read for every touched node after every event.
    alive = False
    recent_applied: list[tuple[int, int, int]] = []

    def __init__(
        self, module: ModuleType, node_id: int, send: Send, rng: random.Random, options: NodeOptions
    ) -> None:
        self._ffi: Any = module.ffi  # type: ignore[attr-defined]
        self._lib: Any = module.lib  # type: ignore[attr-defined]
        self.node_id = node_id
        self._send = send
        self._rng = rng
        self._options = options
        self._handle = self._ffi.new_handle(self)  # the C side's pointer back to us
        self._fault: str | None = None  # what broke the server (it is never called again)
        self._error: BaseException | None = None  # a callback's, raised after the call

    def _enter(self) -> None:
        """Before a library call: refuse a broken server; be the running node."""
        if self._fault is not None:
            raise NativeFault(f"{self._fault} (earlier; the server is broken)")
        RUNNING.node = self

    def _done(self, rc: int) -> int:
        """After a library call: raise what it left behind (a fault, a
        callback's error), else return its result."""
        lib = self._lib
        if rc == FAULT and lib.vr_fault:
            kind = lib.vr_fault
            lib.vr_fault = 0
            if kind == 1:
                what = self._ffi.string(lib.vr_fault_text).decode(errors="replace")
            else:
                what = f"{signal.Signals(lib.vr_fault_signal).name} inside the library"
            self._fault = what
            self._drop_server()
            raise NativeFault(what)
        error = self._error
        if error is not None:
            self._error = None
            raise error
        return rc

    def _drop_server(self) -> None:
        """Forget the broken server's C struct (never touch it again)."""
        raise NotImplementedError


class TableMessages(Messages):
    """Messages read through two tables by type: the text a message's key
    digests (its content, never an address), and its role."""

    key_text: ClassVar[dict[type, Callable[[Any], str]]] = {}
    roles: ClassVar[dict[type, MessageRole]] = {}

    def key(self, message: object) -> int:
        text = self.key_text.get(type(message))
        return zlib.crc32((text(message) if text else repr(message)).encode())

    def role(self, message: object) -> MessageRole:
        return self.roles.get(type(message), MessageRole.OTHER)


def node_factory(node_class: type[NodeAdapter], name: str, messages: object, doc: str) -> Any:
    """A node factory for `node_class`, with the attributes the door reads
    (`messages`, `capabilities`) and the name errors use."""

    def factory(
        node_id: int,
        members: Sequence[tuple[int, bool]],
        send: Send,
        rng: random.Random,
        options: NodeOptions,
    ) -> NodeAdapter:
        members_: Membership = tuple(members)
        return node_class(node_id, members_, send, rng, options)  # type: ignore[call-arg]

    factory.__name__ = name
    factory.__qualname__ = name
    factory.__doc__ = doc
    factory.messages = messages  # type: ignore[attr-defined]
    factory.capabilities = node_class.capabilities  # type: ignore[attr-defined]
    return factory
