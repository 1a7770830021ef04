"""ticketlib: lottery-ticket experiments across weight initializers.

One folder per concern, each importing only those above it in this list (the folder's docstring
says what it holds):
    errors, seeds, config   bad input; seeded draws; the typed run configuration (no torch)
    nets                    models, initializers, masks and pruning
    data                    datasets and where real ones come from
    store                   the content-addressed run store
    engine                  training many masked networks at once (stacks, sparse kernels, Adam)
    imp                     IMP rounds, conditions, protocols, grids, executors, measures, export
    analysis                tidy results, statistics, tables and figures (no torch)
    paper                   the paper's artefacts and build (no torch)
    cli, verify             the `ticketlib` command
"""
__version__ = "0.2.0"
