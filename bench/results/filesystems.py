"""Which filesystem a store lives on, and the refusal to write one on a network filesystem.

SQLite's WAL mode keeps its index in shared memory that every process opening the file must map,
and its locks are POSIX advisory locks: on NFS, Lustre, GPFS, CIFS/SMB, sshfs and their kind the
memory is not shared between nodes and the locks are unreliable, so two jobs on two nodes can
both believe they hold a lease, or corrupt the file (https://www.sqlite.org/wal.html, "WAL does
not work over a network filesystem"; https://www.sqlite.org/lockingv3.html, section 6). The
cluster recipe is one node-local store per job, merged afterwards (``bench results merge``;
docs/DISTRIBUTED.md). Reading a store there (``results``, ``report``, ``--dry-run``) is allowed.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.errors import UserError

MOUNTS = Path("/proc/self/mounts")

# Linux filesystem type names (the third field of /proc/self/mounts) of network and cluster
# filesystems; a fuse type is written ``fuse.<name>``.
NETWORK_TYPES = frozenset(
    {
        "nfs",
        "nfs4",
        "lustre",
        "gpfs",
        "cifs",
        "smb",
        "smb3",
        "smbfs",
        "ceph",
        "glusterfs",
        "beegfs",
        "panfs",
        "afs",
        "9p",
        "ncpfs",
        "davfs",
        "wekafs",
        "fuse.sshfs",
        "fuse.glusterfs",
        "fuse.ceph",
        "fuse.cephfs",
        "fuse.s3fs",
        "fuse.gcsfuse",
        "fuse.rclone",
        "fuse.juicefs",
        "fuse.davfs2",
        "fuse.beegfs",
        "fuse.lustre",
    }
)


def _unescape(field: str) -> str:
    """A mount point as the kernel writes it (space, tab, newline, backslash as octal escapes)."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def filesystem_type(path: str | Path, mounts: Path | None = None) -> str | None:
    """The type of the filesystem holding ``path`` (its longest mount point in ``mounts``,
    default :data:`MOUNTS`), or None where the mount table cannot be read (not Linux)."""
    try:
        text = (mounts or MOUNTS).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    target = Path(os.path.realpath(Path(path).expanduser()))
    best, best_type = -1, None
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = Path(_unescape(fields[1]))
        if (target == point or point in target.parents) and len(point.parts) > best:
            best, best_type = len(point.parts), fields[2]
    return best_type


def is_network(fs_type: str | None) -> bool:
    return fs_type is not None and (
        fs_type in NETWORK_TYPES or fs_type.split(".", 1)[-1] in NETWORK_TYPES
    )


def refuse_network_store(
    path: str | Path, *, forced: bool, mounts: Path | None = None
) -> str | None:
    """Raise a one-line UserError with the cluster recipe when ``path`` (a store about to be
    opened for writing) is on a network filesystem, unless ``forced``; returns the type found."""
    fs_type = filesystem_type(Path(path).parent, mounts)
    if is_network(fs_type) and not forced:
        raise UserError(
            f"results store {path} is on a network filesystem ({fs_type}), where SQLite's locks "
            "and WAL are not safe between nodes: give each job a node-local --store (e.g. "
            "$TMPDIR/results.db), copy it to the shared folder when the job ends, then "
            "`bench results merge A.db B.db ... --out merged.db` (docs/DISTRIBUTED.md); "
            "--network-store forces it"
        )
    return fs_type
