"""Making user-supplied text safe where it leaves the dataset: file names that reach
storage keys, and cells that reach a spreadsheet."""

import re
import unicodedata

_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._ -]+")
MAX_FILENAME_LENGTH = 100

# A cell starting with one of these is run as a formula by Excel, LibreOffice and Sheets.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def safe_filename(name: str, *, default: str = "dataset") -> str:
    """The last path component of `name`, reduced to harmless characters.

    `../../etc/passwd`, `C:\\x\\y.csv` and names with NUL bytes or control characters all
    become a plain name; the result is for display and for the tail of a storage key we
    build ourselves, never a path on its own.
    """
    # Accents come off (é → e); other characters outside the safe set become "_".
    name = unicodedata.normalize("NFKD", name or "")
    name = "".join(c for c in name if not unicodedata.combining(c))
    name = name.replace("\\", "/").split("/")[-1]
    name = _UNSAFE_NAME_CHARS.sub("_", name).strip(" .")
    name = re.sub(r"_+", "_", name)
    if not name or set(name) <= {"_", "."}:
        return default
    if len(name) > MAX_FILENAME_LENGTH:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 10:
            name = stem[: MAX_FILENAME_LENGTH - len(ext) - 1] + "." + ext
        else:
            name = name[:MAX_FILENAME_LENGTH]
    return name


def neutralise_cell(value: str) -> str:
    """Prefix a would-be formula with an apostrophe so spreadsheets show it as text."""
    if value and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def looks_like_formula(value: str) -> bool:
    """A cell a spreadsheet would surely evaluate (a leading "-" alone is too common to flag)."""
    return value.startswith(("=", "+", "@"))
