"""The end of a run: what it printed, where its outputs are, and the SavedModel export."""

import os

EXIT_OK, EXIT_NON_FINITE = 0, 1


def final_report(state, print_fn):
    """Prints the outcome and every output location, exports the generator; the exit code."""
    from mmd_keras import callbacks as cb

    config = state.config
    if state.guard.failed:
        print_fn(f"error: {state.guard.message}")
        return EXIT_NON_FINITE
    if state.start_step >= config.steps:
        print_fn(f"Nothing to train: the checkpoint is at step {state.start_step} >= --steps.")
    step = cb.current_step(state.model)
    print_fn(f"Trained to generator step {step} in {state.elapsed:.1f} s.")
    manager = state.checkpoints.manager
    best = (f"; best by {config.best_metric} in {state.checkpoints.best_manager.directory}"
            if state.evaluation is not None else "")
    print_fn(f"  checkpoints:     {manager.latest_checkpoint} (latest {config.keep_checkpoints} "
             f"kept{best})")
    print_fn(f"  sample grids:    {state.paths['samples']} (latest: {state.samples.last_path})")
    print_fn(f"  TensorBoard:     tensorboard --logdir {state.paths['tensorboard']}")
    _report_kid(state, step, print_fn)
    _export(state, print_fn)
    return EXIT_OK


def _report_kid(state, step, print_fn):
    evaluation, config = state.evaluation, state.config
    if evaluation is None or not evaluation.last_metrics:
        return
    kid = evaluation.last_metrics
    print_fn(f"  KID ({evaluation.extractor.name} features, raw scale, "
             f"{config.eval_num_samples} samples, {config.kid_subsets} subsets of "
             f"{evaluation.kid_subset_size}) at step {step}: {kid['kid']:.5f} +- "
             f"{kid['kid_std']:.5f}")
    if state.kid_floor is not None:
        print_fn(f"  KID real-vs-real floor (training vs held-out digits): "
                 f"{state.kid_floor.mean:.5f} +- {state.kid_floor.std:.5f}")


def _export(state, print_fn):
    config = state.config
    export_dir = os.path.join(state.paths["saved_models"], config.name)
    if config.export and state.start_step >= config.steps and os.path.isdir(export_dir):
        print_fn(f"  SavedModel:      already exported under {export_dir}")
    elif config.export:
        from mmd_keras import export

        path = export.export_generator(state.model.sampling_generator,
                                       state.paths["saved_models"], config.name,
                                       latent_dim=config.latent_dim,
                                       latent_distribution=config.latent_distribution)
        print_fn(f"  SavedModel:      {path}  (saved_model_cli show --dir {path} --all)")
