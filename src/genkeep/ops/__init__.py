"""Operations: the retention sweep of artifacts and blobs, and the duplicate check."""
