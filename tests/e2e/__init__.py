"""The local stack: real emulators, the functions as processes (marker ``e2e``)."""
