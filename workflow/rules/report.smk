# Report (filled in below).
