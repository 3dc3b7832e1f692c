"""Autograd is unavailable to a student's manual-backprop function while it runs.

How it is enforced, in four layers:

1. Grad mode is off during the call (`torch.set_grad_enabled(False)`), and the dispatcher's
   autograd keys are excluded for the thread (a C++ setting, not a Python one): no operation
   records a graph, even with grad mode turned back on and tensors that require grad, so
   no engine object, however it was reached, has anything to differentiate. (Another thread
   would start without that setting: in the sandbox, the student's uid may start none.)
2. Every reverse-mode gradient in PyTorch (`Tensor.backward`, `torch.autograd.grad` and
   `.backward`, `torch.autograd.functional`, `torch.func.grad`/`vjp`/`jacrev`) goes through
   one object, `torch.autograd.Variable._execution_engine`. `install()` replaces it with a
   guard that raises `AutogradForbidden` while a manual-backprop part runs; forward-mode AD
   (`torch.autograd.forward_ad`, `torch.func.jvp`) is blocked the same way at its entry.
   A student who turns grad mode back on still meets the guard.
   torch.func's transforms, which set the dispatcher up themselves, meet this guard.
3. In the sandboxed engine `install()` runs before any notebook cell, so a reference to
   the engine that a student keeps in a variable is already the guard, and the verdict is
   computed afterwards in another process from the returned tensors only.
4. The sandbox refuses processes and threads at the OS level, and ctypes and the
   interpreter's object walks through an audit hook (see engine.child).

The notebook's own checks use layers 1 and 2 for the duration of each call.

What it does not stop: code that takes the layers apart through torch's private bindings
(re-including the dispatcher's keys for the thread, say), as nothing inside one Python
process can be hidden from code running in it.
"""

import contextlib
import importlib
import threading

import torch
from torch.autograd.variable import Variable

# Where forward-mode AD is entered; torch versions differ, so each is guarded if present.
_FORWARD_AD_ENTRIES = (("torch._C", "_enter_dual_level"),
                       ("torch._functorch.predispatch", "_enter_dual_level"))


class AutogradForbidden(RuntimeError):
    """A manual-backprop function tried to use torch.autograd."""


_state = threading.local()


def _forbidden_in() -> str | None:
    return getattr(_state, "function", None)


def _refuse(what: str) -> None:
    function = _forbidden_in() or (_AUTOGRAD_EXCLUDED(_AUTOGRAD) and "this part's code")
    if function:
        raise AutogradForbidden(
            f"{function} used {what}, which this part forbids: compute the gradients by "
            f"hand with the chain rule, as autograd would.")


def _guarded_engine(engine):
    """The autograd engine, refusing to run while a manual-backprop function is called. It
    keeps the engine in a closure, not in an attribute a student could read."""

    class GuardedEngine:
        def run_backward(self, *args, **kwargs):
            _refuse("autograd (.backward() or torch.autograd)")
            return engine.run_backward(*args, **kwargs)

        def queue_callback(self, *args, **kwargs):
            return engine.queue_callback(*args, **kwargs)

        def is_checkpoint_valid(self):
            return engine.is_checkpoint_valid()

    return GuardedEngine()


def _guarded_dual_level(original):
    def enter_dual_level(*args, **kwargs):
        _refuse("forward-mode autograd (torch.autograd.forward_ad or torch.func.jvp)")
        return original(*args, **kwargs)
    return enter_dual_level


def install() -> None:
    """Put the guards in place (once per process); they do nothing until `forbidden` runs."""
    if type(Variable._execution_engine).__name__ == "GuardedEngine":
        return
    Variable._execution_engine = _guarded_engine(Variable._execution_engine)
    for module_name, name in _FORWARD_AD_ENTRIES:
        with contextlib.suppress(ImportError):
            module = importlib.import_module(module_name)
            if hasattr(module, name):
                setattr(module, name, _guarded_dual_level(getattr(module, name)))


# Every backend's autograd kernel, and the views' bookkeeping that goes with it. The guard
# and the check are taken now: `lock_down` removes torch's bindings that change them.
_AUTOGRAD = torch._C.DispatchKey.AutogradFunctionality
_AUTOGRAD_KEYS = (torch._C.DispatchKeySet(_AUTOGRAD)
                  | torch._C.DispatchKeySet(torch._C.DispatchKey.ADInplaceOrView))
_EXCLUDED_FOR_THE_THREAD = torch._C._ExcludeDispatchKeyGuard
_AUTOGRAD_EXCLUDED = torch._C._dispatch_tls_is_dispatch_key_excluded
# torch's private bindings that would put the dispatcher's keys back for a thread, or turn
# off the modes through which the checks watch a call (routes.follow).
_KEY_SETTERS = ("_dispatch_tls_set_dispatch_key_excluded",
                "_dispatch_tls_set_dispatch_key_included", "_ForceDispatchKeyGuard",
                "_SetExcludeDispatchKeyGuard", "_RestorePythonTLSSnapshot",
                "DisableTorchFunction")


# Where torch.func's transforms enter a new level of their own (each sets the dispatcher up
# anew, autograd keys included), as torch.func's modules hold them.
# (Their matching exits become no-ops: no level is ever entered.)
_TRANSFORM_ENTRIES = (("torch._C._functorch", "_grad_increment_nesting"),
                      ("torch._C._functorch", "_jvp_increment_nesting"),
                      ("torch._functorch.eager_transforms", "_grad_increment_nesting"),
                      ("torch._functorch.eager_transforms", "_jvp_increment_nesting"),
                      ("torch._functorch.predispatch", "_jvp_increment_nesting_impl"))
_TRANSFORM_EXITS = (("torch._C._functorch", "_grad_decrement_nesting"),
                    ("torch._C._functorch", "_jvp_decrement_nesting"),
                    ("torch._functorch.eager_transforms", "_grad_decrement_nesting"),
                    ("torch._functorch.eager_transforms", "_jvp_decrement_nesting"),
                    ("torch._functorch.predispatch", "_jvp_decrement_nesting_impl"))


def _no_transform(*_args, **_kwargs):
    raise AutogradForbidden("torch.func's transforms are not available while grading, which "
                            "forbids them: compute the gradients by hand, or with "
                            "torch.autograd where the part allows it.")


def _no_level(*_args, **_kwargs) -> None:
    return None


def lock_down() -> None:
    """In a sandboxed child, before any student code: remove the bindings through which
    code could give the thread its autograd keys back or switch the checks' modes off (the
    guard keeps its own), and close torch.func's transforms, which set those keys anew."""
    install()
    for name in _KEY_SETTERS:
        if hasattr(torch._C, name):
            delattr(torch._C, name)
    for entries, replacement in ((_TRANSFORM_ENTRIES, _no_transform),
                                 (_TRANSFORM_EXITS, _no_level)):
        for module_name, name in entries:
            with contextlib.suppress(ImportError):
                module = importlib.import_module(module_name)
                if hasattr(module, name):
                    setattr(module, name, replacement)
_NO_GRAPH = "does not require grad and does not have a grad_fn"


@contextlib.contextmanager
def forbidden(function: str):
    """Within this block, any use of autograd raises AutogradForbidden naming `function`."""
    install()
    previous = _forbidden_in()
    _state.function = function
    try:
        with torch.no_grad(), _EXCLUDED_FOR_THE_THREAD(_AUTOGRAD_KEYS):
            yield
    except RuntimeError as error:
        if _NO_GRAPH in str(error):  # a backward() with no graph recorded: see layer 1
            raise AutogradForbidden(f"{function} used autograd, which this part forbids: "
                                    f"compute the gradients by hand with the chain rule, "
                                    f"as autograd would.") from None
        raise
    finally:
        _state.function = previous
