"""The node's data: the embedded store (``local``), a remote SPARQL store read live
(``remote``), and the sources that fill the embedded one (``sources``). Knows no HTTP,
no tokens and no policies."""
