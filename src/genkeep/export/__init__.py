"""Renderers from canonical markdown content to preview HTML and export files.

The renderers load their libraries on import: a process that never exports (a CLI command,
the task catalogue reading ``export.types``) imports only what it names.
"""
