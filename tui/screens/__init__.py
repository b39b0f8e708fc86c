"""The console's screens: runs list, run dashboard, agent detail, review, and the dialogs."""
