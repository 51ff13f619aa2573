"""Re-export of :mod:`isodeploy.core.fileio`, the one owner of atomic writes, temporaries and
output-folder ownership."""

from isodeploy.core.fileio import (  # noqa: F401
    LOCK_FILE,
    OWNER_FILE,
    TEMP_PREFIX,
    OutputFolder,
    atomic_path,
    check_output_path,
    check_target,
    clean_stale_temps,
    clean_system_temps,
    folder_lock,
    make_temp_dir,
    open_output_folder,
    probe_output_folder,
    read_owned,
    replace_into,
    sha256_file,
    temp_path,
    tree_digest,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
)
