"""Publish: a build is written to its own DuckDB file and swapped in atomically once validation lets it through.

Readers never see a half-built warehouse: they open `warehouse.duckdb`, which is only ever replaced by a rename
of a complete, closed file. A reader holding the old file keeps its consistent view (POSIX keeps the old inode
alive), and the next connection sees the new build.

Modules: `paths` (where a data directory keeps builds, the build records), `files` (partial file -> complete build
-> atomic swap, pruning the last K, cleaning up after a failed or killed build, the crash test hook
`WAREHOUSE_CRASH_AT`), `verify` (tamper evidence), `lock` (one build per data directory at a time), `snapshots`
(locked snapshots `DIR/locks/<label>/` with a manifest of content hashes), `steps` (the stage as the build calls
it). This module states the package's API. See docs/operations.md.
"""

from warehouse.publish.paths import (  # noqa: F401
    PARTIAL_SUFFIX,
    SWAP_NAME,
    LOCK_FILE,
    LOCKS_DIR,
    DEFAULT_KEEP_BUILDS,
    CRASH_ENV,
    LOCK_TIMEOUT_ENV,
    BuildPaths,
    BuildRecord,
    utc_now,
    new_build_id,
    write_record,
    read_records,
    last_built_export,
)
from warehouse.publish.files import (  # noqa: F401
    discard_partial_builds,
    remove_partial_build,
    remove_partial_files,
    fsync_path,
    finalise_build,
    swap_in,
    crash_point,
    keep_builds_default,
    locked_build_ids,
    prune_builds,
)
from warehouse.publish.verify import (  # noqa: F401
    content_sha256,
    Verification,
    published_build_of,
    verify_file,
    verify_published,
)
from warehouse.publish.lock import (  # noqa: F401
    pid_alive,
    BuildLocked,
    lock_holder,
    build_lock,
)
from warehouse.publish.snapshots import (  # noqa: F401
    LABEL_PATTERN,
    VOLATILE_COLUMNS,
    SnapshotError,
    table_content_hashes,
    code_version,
    package_versions,
    list_locks,
    lock_snapshot,
)
