"""Contracts every layer shares: exit codes and user errors (:mod:`.errors`), safe file writes and
output-folder ownership (:mod:`.fileio`), typed readers of artifacts (:mod:`.artifacts`) and
up-front resource checks (:mod:`.limits`). See docs/reliability.md."""
