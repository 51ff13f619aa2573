"""Contracts every layer shares: exit codes and user errors (:mod:`.errors`), atomic writes that never
follow a link (:mod:`.safe_write`), output folders with their ownership marker and lock
(:mod:`.output_folder`, :mod:`.ownership`, :mod:`.locks`), the clean-up that knows its own names
(:mod:`.cleanup`), bounded readers of untrusted files (:mod:`.jsonread`, :mod:`.artifacts`,
:mod:`.onnx_io`, :mod:`.bounds`) and up-front resource checks (:mod:`.limits`). See docs/reliability.md
and docs/architecture.md."""
