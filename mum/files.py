"""Atomic writes: a file or folder appears under its final name complete or not at all, and a failure leaves
nothing behind and never touches a file already there. The temporary sibling is created with the permissions
a plain ``open(path, "w")`` / ``mkdir`` would give (mode 0o666 / 0o777 less the process umask), unlike
``tempfile.mkstemp``'s owner-only 0o600, so results stay readable by the people and services they are for.

What is never lost, whatever the flags:

* Without ``overwrite`` the final rename refuses to replace anything (``renameat2(RENAME_NOREPLACE)``, else a
  hard link then unlink of the temporary): a file or folder that appeared under the final name while the run
  was working is kept and the run fails with one line. Of two runs writing one output, one wins.
* With ``overwrite`` a folder output is not replaced as a whole: only the entries this run wrote (its own
  export names) are replaced, one by one; other files in the folder stay, and an entry that holds one of the
  run's inputs is never removed.
* Temporaries are named ``.NAME.<12 hex digits>[SUFFIX]`` beside ``NAME`` and locked (``flock``) while in use.
  Ones left behind by a killed run (unlocked and older than :data:`STALE_AFTER_S`) are removed by the next run
  writing the same output (:func:`remove_stale_temporaries`, called by :func:`check_output_path`); a
  concurrent run's temporaries are locked and never touched.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import functools
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

from mum.errors import UserError

try:
    import fcntl
except ImportError:  # not POSIX: no locks, temporaries are judged by age alone
    fcntl = None

STALE_AFTER_S = 60.0  # an unlocked temporary older than this belongs to a run that is gone
STALE_AFTER_UNLOCKED_S = 3600.0  # without flock (not POSIX): age alone decides, so be patient
_AT_FDCWD = -100
_RENAME_NOREPLACE = 1


def _sibling(path: Path, suffix: str) -> Path:
    """A fresh hidden name beside ``path`` (same folder, so the final rename is atomic)."""
    return path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}{suffix}"


def _temporary_pattern(path: Path) -> re.Pattern:
    return re.compile(rf"\.{re.escape(path.name)}\.[0-9a-f]{{12}}(?:{re.escape(path.suffix)})?")


def _lock(fd: int) -> int | None:
    """Hold an exclusive ``flock`` on ``fd`` (released when it is closed, or when the process dies, even by
    ``kill -9``) and return it; close it and return ``None`` where there are no locks."""
    if fcntl is None:
        os.close(fd)
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # a file system without locks: keep the descriptor, the sweep then leaves it alone
        pass
    return fd


def _remove(path: Path) -> None:
    """Remove a file, a symbolic link (not what it points to) or a folder tree (gone already: fine)."""
    if path.is_dir() and not path.is_symlink():
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def remove_stale_temporaries(path: str | os.PathLike, older_than: float | None = None) -> list[Path]:
    """Remove the temporaries a killed run left beside ``path`` (``.NAME.<hex>``): only those no process holds
    locked and that are older than ``older_than`` seconds (default :data:`STALE_AFTER_S`); return them."""
    path = Path(path)
    older_than = _stale_after(older_than)
    pattern = _temporary_pattern(path)
    candidates = []
    for folder in (path.parent, path):  # beside it; an existing folder output's staging folder is inside it
        try:
            candidates += [folder / n for n in sorted(os.listdir(folder)) if pattern.fullmatch(n)]
        except OSError:  # no such folder (or not one)
            pass
    removed = []
    now = time.time()
    for candidate in candidates:
        try:
            if candidate.is_symlink() or now - candidate.lstat().st_mtime < older_than:
                continue  # never ours, or maybe a run that has just started
        except OSError:
            continue
        if _remove_unless_locked(candidate, candidate):
            removed.append(candidate)
    return removed


def _stale_after(older_than: float | None) -> float:
    """The age beyond which an unlocked temporary belongs to a run that is gone: ``older_than``, by default
    :data:`STALE_AFTER_S` (without locks, :data:`STALE_AFTER_UNLOCKED_S`: age alone decides)."""
    if older_than is not None:
        return older_than
    return STALE_AFTER_S if fcntl is not None else STALE_AFTER_UNLOCKED_S


def _remove_unless_locked(target: Path, lock_file: Path) -> bool:
    """Remove ``target`` unless a live process holds ``lock_file`` (``target`` itself, or a file inside it)
    locked, or it is missing; whether it was removed."""
    try:
        fd = os.open(lock_file, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # a live run's
        _remove(target)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


@functools.lru_cache(maxsize=1)
def _renameat2():
    """The C library's ``renameat2`` (glibc 2.28+, Linux 3.15+), or ``None``."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def _renameat2_noreplace(src: Path, dst: Path) -> bool:
    """``renameat2(src, dst, RENAME_NOREPLACE)``: True when done, False where the kernel, C library or file
    system lacks it; ``FileExistsError`` when ``dst`` exists."""
    fn = _renameat2()
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
        return True
    import ctypes

    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(dst))  # EEXIST becomes FileExistsError


def rename_noreplace(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Rename ``src`` to ``dst`` only if nothing is at ``dst`` (not even a dangling link), atomically where the
    system allows: ``renameat2(RENAME_NOREPLACE)``, else for a file a hard link then unlink of ``src``, else
    (file systems without either) a check then rename. ``FileExistsError`` when ``dst`` exists."""
    src, dst = Path(src), Path(dst)
    if _renameat2_noreplace(src, dst):
        return
    if not src.is_dir():
        try:
            os.link(src, dst, follow_symlinks=False)
        except FileExistsError:
            raise
        except OSError:  # no hard links here (FAT, some network file systems)
            pass
        else:
            os.unlink(src)
            return
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst))
    os.rename(src, dst)


def _appeared(path: Path) -> UserError:
    return UserError(f"{path}: appeared while this run was writing it and was left as it is "
                     f"(another run writing the same output?); use --overwrite to replace it")


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path.absolute()


def _holds_any(entry: Path, protected: Iterable[Path]) -> Path | None:
    """The first of ``protected`` (resolved paths) that removing ``entry`` would delete: ``entry`` itself or a
    file under it. A symbolic link ``entry`` is removed, not what it points to, so it holds nothing."""
    if entry.is_symlink():
        return None
    target = _resolved(entry)
    for p in protected:
        if p == target or target in p.parents:
            return p
    return None


def _replace_entry(src: Path, dst: Path, protected: Sequence[Path]) -> None:
    """Put ``src`` in place of ``dst`` (whatever is there is moved aside first, then deleted once ``src`` is in)."""
    kept = _holds_any(dst, protected) if os.path.lexists(dst) else None
    if kept is not None:
        raise UserError(f"{dst}: holds the input {kept}; not replaced (write the output somewhere else)")
    old = None
    if os.path.lexists(dst):
        old = _sibling(dst, "")
        os.rename(dst, old)
        with contextlib.suppress(OSError):  # fresh, so that a concurrent run's sweep leaves it to us
            os.utime(old, follow_symlinks=False)
    try:
        rename_noreplace(src, dst)
    except BaseException:
        if old is not None and not os.path.lexists(dst):
            os.rename(old, dst)
        raise
    if old is not None:
        _remove(old)


SCRATCH_LOCK = ".lock"  # inside a scratch folder: held locked by the run that owns it


@contextlib.contextmanager
def scratch_folder(prefix: str) -> Iterator[Path]:
    """A fresh folder ``$TMPDIR/PREFIX<random>`` for the block (a video's decoded frames, SfM's database),
    removed when it ends. The run holds a lock on a file inside it, so that the folders of runs killed outright
    (``kill -9``, no clean-up) are told from live ones: those, unlocked and older than :data:`STALE_AFTER_S`,
    are removed first (where there are no locks: older than :data:`STALE_AFTER_UNLOCKED_S`)."""
    remove_stale_scratch(prefix)
    path = Path(tempfile.mkdtemp(prefix=prefix))
    lock = _lock(os.open(path / SCRATCH_LOCK, os.O_WRONLY | os.O_CREAT, 0o600))
    try:
        yield path
    finally:
        try:
            shutil.rmtree(path, ignore_errors=True)
        finally:
            if lock is not None:
                os.close(lock)


def remove_stale_scratch(prefix: str, older_than: float | None = None) -> list[Path]:
    """Remove the :func:`scratch_folder` folders with ``prefix`` that killed runs left in ``$TMPDIR``: those
    holding the lock file, unlocked, last changed more than ``older_than`` seconds ago; return them."""
    older_than = _stale_after(older_than)
    root = Path(tempfile.gettempdir())
    try:
        names = sorted(n for n in os.listdir(root) if n.startswith(prefix))
    except OSError:
        return []
    removed, now = [], time.time()
    for name in names:
        folder = root / name
        try:
            if folder.is_symlink() or not folder.is_dir() or now - folder.lstat().st_mtime < older_than:
                continue  # not ours, or maybe a run that has just started
        except OSError:
            continue
        if _remove_unless_locked(folder, folder / SCRATCH_LOCK):  # no lock file: not made by scratch_folder
            removed.append(folder)
    return removed


def check_entry_folders(folder: str | os.PathLike, entries: Iterable[str]) -> None:
    """Refuse to write ``entries`` (relative paths such as ``sparse/0``) into ``folder`` when a folder on the way
    to one (``sparse``) is there as something else: a file, or a symbolic link. Replacing it would delete what
    this program did not write (``--overwrite`` replaces the entries, never what holds them)."""
    folder = Path(folder)
    for rel in entries:
        parts = Path(rel).parts
        for k in range(1, len(parts)):
            here = folder.joinpath(*parts[:k])
            if here.is_symlink() or (os.path.lexists(here) and not here.is_dir()):
                what = "a symbolic link" if here.is_symlink() else "a file"
                raise UserError(f"{here}: is {what}, not a folder; {rel} would be written inside it (move it away "
                                f"or write the output somewhere else)")
            if not here.is_dir():
                break


def check_replaceable(folder: str | os.PathLike, contents: Mapping[str, Sequence[str] | None]) -> None:
    """Refuse (one :class:`UserError`) to replace what this program would not have written: each entry of
    ``contents`` (a relative path such as ``depth`` or ``sparse/0``) that is in ``folder`` must be a regular file
    (``None``) or a folder of regular files whose names match the given ``fnmatch`` patterns (its unfinished
    temporaries too), never a symbolic link. ``--overwrite`` replaces such entries whole."""
    folder = Path(folder)
    for rel, patterns in contents.items():
        entry = folder / rel
        if not os.path.lexists(entry):
            continue
        advice = "not replaced (move it away or write the output somewhere else)"
        if entry.is_symlink():
            raise UserError(f"{entry}: is a symbolic link, which this program does not write; {advice}")
        if patterns is None:
            if not entry.is_file():
                raise UserError(f"{entry}: is not a file, so this program did not write it; {advice}")
            continue
        if not entry.is_dir():
            raise UserError(f"{entry}: is not a folder, so this program did not write it; {advice}")
        for item in sorted(entry.iterdir()):
            temporary = re.fullmatch(r"\.(.+)\.[0-9a-f]{12}(?:\.[^.]+)?", item.name)
            name = temporary.group(1) if temporary else item.name
            if item.is_symlink() or not item.is_file() or not any(fnmatch.fnmatchcase(name, p) for p in patterns):
                raise UserError(f"{entry}: holds {item.name}, which this program does not write; {advice}")


def _merge(tmp: Path, path: Path, entries: Sequence[str] | None, protected: Sequence[Path]) -> None:
    """Move the ``entries`` (relative paths such as ``scene.ply`` or ``sparse/0``; default: every top-level entry
    of ``tmp``) from ``tmp`` into the existing folder ``path``, each replacing only its own name. An entry below a
    folder that ``path`` lacks (or has as a link or a file) moves with that folder."""
    names = list(entries) if entries is not None else sorted(os.listdir(tmp))
    check_entry_folders(path, names)
    for rel in names:
        parts = Path(rel).parts
        k = 0
        while k < len(parts) - 1:
            here = path.joinpath(*parts[: k + 1])
            if not here.is_dir():  # absent (a link or a file was refused above)
                break
            k += 1
        unit = parts[: k + 1]
        src, dst = tmp.joinpath(*unit), path.joinpath(*unit)
        if os.path.lexists(src):
            remove_stale_temporaries(dst)  # what a killed run had moved aside
            _replace_entry(src, dst, protected)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield an empty temporary file beside ``path`` (same suffix, so writers that infer the format from it
    work); rename it onto ``path`` only if the block succeeds. Without ``overwrite`` the rename refuses to
    replace a file that appeared at ``path`` meanwhile (:class:`UserError`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(path, path.suffix)
    lock = _lock(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                rename_noreplace(tmp, path)
            except FileExistsError:
                raise _appeared(path) from None
    finally:
        try:
            if os.path.lexists(tmp):
                tmp.unlink()
        finally:
            if lock is not None:
                os.close(lock)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, overwrite: bool = False, entries: Sequence[str] | None = None,
               protected: Iterable[str | os.PathLike] = ()) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path`` (hidden inside it when a folder is there already); move it
    into place only if the block succeeds.

    Where nothing is at ``path`` the folder is renamed into place, refusing to replace one that appeared
    meanwhile. Where a folder is there already, without ``overwrite`` that is a :class:`UserError` and nothing
    changes; with ``overwrite`` only ``entries`` (relative paths the block wrote, default every top-level entry
    of the temporary folder) are replaced, one at a time: other files in the folder stay, and an entry holding
    one of ``protected`` (input files, compared as resolved paths) is refused."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # beside the folder; inside an existing one (hidden), so that its entries are renamed within one file system
    # even where the folder is a mount point (a container's volume: renames from its parent fail, EXDEV)
    tmp = path / _sibling(path, "").name if path.is_dir() and not path.is_symlink() else _sibling(path, "")
    tmp.mkdir(mode=0o777)
    lock = _lock(os.open(tmp, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)))
    protected = [_resolved(Path(p)) for p in protected]
    try:
        yield tmp
        if tmp.parent != path:  # nothing was there: renamed into place, unless something appeared meanwhile
            try:
                rename_noreplace(tmp, path)
                return
            except FileExistsError:
                pass
        if not overwrite:
            raise _appeared(path)
        if not path.is_dir():
            raise UserError(f"{path}: is not a folder, a folder output cannot replace it")
        _merge(tmp, path, entries, protected)  # the folder is there: its entries are replaced
    finally:
        try:
            if tmp.exists():
                shutil.rmtree(tmp)
        finally:
            if lock is not None:
                os.close(lock)


def resolve_path(path: str | os.PathLike) -> Path:
    """``Path(path).resolve()`` with a one-line :class:`UserError` for a symbolic link loop or an unreadable
    folder on the way."""
    try:
        return Path(path).resolve()
    except RuntimeError:  # Python < 3.13: "Symlink loop from ..."
        raise UserError(f"{path}: symbolic link loop") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UserError(f"{path}: symbolic link loop") from None
        raise UserError(f"{path}: cannot resolve ({exc.strerror or exc})") from None


def check_inputs_kept(targets: Iterable[str | os.PathLike], inputs: Iterable[str | os.PathLike]) -> None:
    """Refuse outputs whose replacement would delete an input: any of ``targets`` that is, or is a real folder
    holding, one of ``inputs`` (resolved, so symbolic links into the output are followed)."""
    protected = [resolve_path(p) for p in inputs]
    for target in targets:
        target = Path(target)
        if os.path.lexists(target):
            kept = _holds_any(target, protected)
            if kept is not None:
                raise UserError(f"{target}: holds the input {kept}; write the output somewhere else")


def check_output_path(path: str | os.PathLike, overwrite: bool, inputs: Sequence[str | os.PathLike] = ()) -> Path:
    """Refuse to overwrite an existing output unless ``overwrite``; make sure its folder can be created.

    Never acceptable, whatever ``overwrite`` says: an empty path, the current folder or one above it (or the
    file-system root), and an output that is or contains one of ``inputs`` (replacing it would delete them).
    Removes the stale temporaries of earlier, killed runs writing ``path``."""
    if not str(path).strip():
        raise UserError("the output path is empty")
    path = Path(path)
    target = resolve_path(path)
    cwd = resolve_path(Path.cwd())
    if target == cwd or target in cwd.parents or target == Path(target.anchor):
        raise UserError(f"{path}: is the current folder or one above it; name a new file or folder")
    for item in inputs:
        source = resolve_path(item)
        if target == source or target in source.parents:
            raise UserError(f"{path}: is or contains the input {item}; write the output somewhere else")
    try:
        remove_stale_temporaries(path)
        if os.path.lexists(path) and not overwrite:
            raise UserError(f"{path}: already exists (use --overwrite to replace it)")
        ancestor = path.absolute().parent
        while not ancestor.exists():  # the folders to be created must hang off a writable folder
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            raise UserError(f"{ancestor}: is not a folder, cannot write {path} under it")
        if not os.access(ancestor, os.W_OK | os.X_OK):
            raise UserError(f"{ancestor}: folder is not writable, cannot write {path}")
    except OSError as exc:
        raise UserError(f"{path}: cannot check the output ({exc.strerror or exc})") from None
    return path
