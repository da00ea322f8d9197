"""Generated hostile input (hypothesis) against both functions."""
