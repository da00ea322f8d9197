"""The pure core: decisions, contracts and codecs, with no I/O and no fakes."""
