"""ftlab-tfidf: a TF-IDF + linear classifier backend, the minimal example of a third-party backend."""
