"""Screens pushed over the main view: dialogs, the folder browser, help."""
