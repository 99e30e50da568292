"""Errors a user can cause, and the one line the command line prints for them.

Every mistake in what a user hands amalib — a file that is missing, truncated or holds something
else, a config key or value that cannot be used, an impossible combination of options — is raised
as an :class:`AmalibError` (or one of the ``OSError`` kinds of :func:`user_error_line`) whose
message is one line: what is wrong, with which file or key, and what to do. ``amalib`` prints it
as ``error: …`` and exits with the error's :attr:`~AmalibError.exit_status`; anything else is a
bug in amalib and keeps its traceback (``--debug`` shows the traceback of every error).

The subclasses are also ``ValueError`` s, as the errors they replace were, so code that caught
``ValueError`` still does.
"""

from __future__ import annotations

import errno

__all__ = ["AmalibError", "CheckpointError", "InputError", "one_line", "user_error_line"]


class AmalibError(Exception):
    """A mistake in the input a user gave amalib; the message names the file or key and the fix.

    Attributes:
        exit_status: What ``amalib`` exits with: 2, a usage error (the input is wrong).
    """

    exit_status = 2


class CheckpointError(AmalibError, ValueError):
    """A file given as a checkpoint or backbone that is damaged or holds something else."""


class InputError(AmalibError, ValueError):
    """An input file that cannot be read as what it should be: an image, a drawing, a list."""


def one_line(message: str) -> str:
    """``message`` on one line (lines joined by a space, surrounding blanks dropped)."""
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


#: OSError kinds about a path the user named (exit status 2), with the fix for each.
_PATH_ERRORS = {
    errno.ENOENT: "no such file or folder: {f}; check the path",
    errno.EEXIST: "{f} exists and is not a folder; choose another path",
    errno.ENOTDIR: "{f}: a part of this path is a file, not a folder; choose another path",
    errno.EISDIR: "{f} is a folder; give a file name",
    errno.EACCES: "permission denied: {f}; choose a path you may read or write (or fix its "
                  "permissions)",
    errno.EPERM: "permission denied: {f}; choose a path you may read or write (or fix its "
                 "permissions)",
    errno.ENAMETOOLONG: "file name too long: {f}; choose a shorter path",
    errno.EROFS: "{f} is on a read-only file system; choose another path",
}
_PATH_TYPES = (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError,
               PermissionError)
#: OSError kinds of the machine, not of the input (exit status 1).
_MACHINE_ERRORS = {
    errno.ENOSPC: "no space left on the device while writing {f}; free some space or write "
                  "elsewhere",
    errno.EDQUOT: "disk quota exceeded while writing {f}; free some space or write elsewhere",
}


def user_error_line(err: BaseException) -> tuple[str, int] | None:
    """The ``error:`` line and exit status for an error a user caused; None for a bug.

    :class:`AmalibError` s give their message; ``OSError`` s about a path (not found, exists, not
    a folder, permission denied, …) give a line naming the path (status 2), a full disk or quota
    status 1; CUDA running out of memory gives status 1 and what to lower.
    """
    if isinstance(err, AmalibError):
        return one_line(str(err)), err.exit_status
    if isinstance(err, _PATH_TYPES) and err.errno is None:  # raised with amalib's own message
        return one_line(str(err)), 2
    if isinstance(err, OSError) and err.errno in (*_PATH_ERRORS, *_MACHINE_ERRORS):
        if err.filename is None:
            return one_line(err.strerror or str(err)), 2 if err.errno in _PATH_ERRORS else 1
        name = str(err.filename) + ("" if err.filename2 is None else f" -> {err.filename2}")
        if err.errno in _PATH_ERRORS:
            return _PATH_ERRORS[err.errno].format(f=name), 2
        return _MACHINE_ERRORS[err.errno].format(f=name), 1
    if type(err).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError
        return ("the GPU ran out of memory; lower data.batch_size (or data.eval_batch_size) with "
                "--set, or use --device cpu"), 1
    return None
