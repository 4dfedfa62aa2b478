"""Errors the command line reports as one line (``error: ...``, exit status 2)."""


class UserError(Exception):
    """Bad input from the user: a missing file, a malformed option, an unusable video."""


def require(module: str, extra: str):
    """Import a heavy optional dependency, or explain which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise UserError(
            f"{module} is not installed ({exc}); install it with: pip install 'emoforge[{extra}]'"
        ) from None
