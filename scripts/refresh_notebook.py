"""Run ``notebooks/ai21.ipynb`` top to bottom against the AI21 emulator and save its outputs.

Usage (in the virtualenv ``./dev test`` makes, which has nbclient and ipykernel)::

    .venv/bin/python scripts/refresh_notebook.py           # execute, then write the outputs back
    .venv/bin/python scripts/refresh_notebook.py --check   # execute only; exit 1 if a cell fails

The run is the one CI makes (``tests/test_notebook.py`` imports :func:`execute`): a fresh
kernel on this interpreter, no ``AI21_*`` variables (so the notebook starts the emulator), no
network beyond loopback for the kernel (``%pip`` may still reach the package index), and a
timeout per cell. Commit the notebook this script writes.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "ai21.ipynb"
CELL_TIMEOUT = 120  # seconds


class InterpreterKernelManager(AsyncKernelManager):
    """A ``python3`` kernel on :attr:`python` (this interpreter unless a subclass says
    otherwise), whatever kernelspecs are installed.

    A user-level ``python3`` kernelspec may point at another Python; the notebook must run on
    the interpreter (and virtualenv) it is meant for.
    """

    python: str = sys.executable

    @property
    def kernel_spec(self) -> KernelSpec:
        return KernelSpec(
            argv=[self.python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            display_name="Python 3 (ipykernel)",
            language="python",
        )


# Run by the kernel at start-up (an IPython startup file, so only the kernel process: ``%pip``
# runs pip in a child process, which may reach the package index): name lookups of anything but
# loopback fail, so the notebook provably talks to the emulator only.
LOOPBACK_ONLY = """\
def _install_loopback_guard():
    import ipaddress
    import socket

    getaddrinfo = socket.getaddrinfo

    def loopback_only(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        try:
            allowed = name in (None, "", "localhost") or ipaddress.ip_address(name).is_loopback
        except ValueError:
            allowed = False
        if not allowed:
            raise OSError(f"network access to {name!r} is blocked: this run is offline")
        return getaddrinfo(host, *args, **kwargs)

    socket.getaddrinfo = loopback_only


_install_loopback_guard()
del _install_loopback_guard
"""


def kernel_env(ipython_dir: Path, *, checkout: bool = True) -> dict[str, str]:
    """The caller's environment minus every AI21 setting, with the network guard installed as
    a startup file of a fresh IPython profile in ``ipython_dir``; with ``checkout``, this
    checkout (the package and the emulator) is importable too."""
    startup = ipython_dir / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-loopback-only.py").write_text(LOOPBACK_ONLY, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AI21_")}
    env.pop("HF_HUB_OFFLINE", None)  # the notebook itself must make the keyless run offline
    env["IPYTHONDIR"] = str(ipython_dir)
    if checkout:
        paths = [str(ROOT), str(ROOT / "emulator"), env.get("PYTHONPATH")]
        env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
    return env


def execute(
    notebook: Any,
    timeout: int = CELL_TIMEOUT,
    *,
    python: str | None = None,
    env: dict[str, str] | None = None,
) -> Any:
    """Execute ``notebook`` (an nbformat node) in place and return it; raise on any error.

    By default the kernel runs on this interpreter with this checkout importable. With
    ``python`` (another environment's interpreter) it runs there, and the package comes from
    whatever that environment installs; ``env`` adds variables (e.g. ``PIP_FIND_LINKS``).
    """
    manager = type(
        "KernelManager", (InterpreterKernelManager,), {"python": python or sys.executable}
    )
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        kernel_manager_class=manager,
        timeout=timeout,
        allow_errors=False,
        record_timing=False,
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    with tempfile.TemporaryDirectory(prefix="ai21-notebook-") as ipython_dir:
        kernel = kernel_env(Path(ipython_dir), checkout=python is None)
        client.execute(env={**kernel, **(env or {})})
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = coalesce_streams(cell.outputs)
    return notebook


def coalesce_streams(outputs: list[Any]) -> list[Any]:
    """Merge consecutive stdout (or stderr) outputs, as Jupyter shows them: one block each."""
    merged: list[Any] = []
    for output in outputs:
        previous = merged[-1] if merged else None
        if (
            previous is not None
            and output.output_type == "stream"
            and previous.output_type == "stream"
            and previous.name == output.name
        ):
            previous.text += output.text
        else:
            merged.append(output)
    return merged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="execute only, do not write")
    args = parser.parse_args(argv)

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    started = time.monotonic()
    execute(notebook)
    print(f"executed {NOTEBOOK.relative_to(ROOT)} in {time.monotonic() - started:.1f} s")
    if not args.check:
        nbformat.write(notebook, NOTEBOOK)
        print(f"wrote the outputs to {NOTEBOOK.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
