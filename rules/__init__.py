"""trainlint's rules, one module per rule (`tlNNN_slug.py`), plus shared analysis helpers."""
