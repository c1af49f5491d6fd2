"""`trainlint server`: a language server over stdio (needs the `server` extra: pygls).

`checking` lints editor buffers with the engine, `convert` turns the results into
Language Server Protocol objects, `app` holds the server and its handlers.
"""
