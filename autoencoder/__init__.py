"""The suite's code, one concern a module. Scripts and notebooks import it through the
top-level `helpers.py`, which names every public function, class and constant.

    errors       UserError, DataError: problems a user can fix, shown as one line
    files        atomic writes, safe pickles, the info pickle, OutputPaths
    datasets     MNIST, Fashion-MNIST, KMNIST: classes, names, and the file formats
    sources      load_dataset: --data, the data/ cache, then downloads
    model        AutoEncoder, CodeSpec, save_model / load_model, Lasagne weights
    device       devices, precision, batched evaluation (reconstruction_mse)
    recipes      TrainConfig, the two recipes' hyperparameters, the optimizer and schedule
    training     Run: the epoch loop, checkpoints, what training writes
    progress     bars on a terminal, plain lines in a log
    cli          option types, the data options, one-line errors
    figures      drawing and saving figures (matplotlib, imported on first use)
    trained_run  a trained run's outputs, loaded for the plot scripts
    analysis     PCA, k-NN accuracy, the code-quality and sweep tables
    reference    the 2016 run's losses, from its published logs
    explorer     the code explorer: one HTML page (explorer.html, explorer.js) from a trained run
"""
