"""The names users imported from `ldifs_nb.train` and `ldifs_nb.evaluate` before they were carved (issue 18) still import:
from their new homes, re-exported; the four experiment functions with a DeprecationWarning naming `ldifs_nb.experiment`."""
import importlib, warnings

import pytest

# `__all__` of ldifs_nb.train and ldifs_nb.evaluate at d0a0c5f, the last commit before the carve
TRAIN = ['ADDED_FIELDS', 'ANCHORS', 'resolve_config', 'cosine_lr', 'steps_per_epoch', 'batch_indices', 'total_steps', 'Prepared', 'trainable_parameters', 'build_model', 'run_dir', 'config_dict', 'versions', 'write_manifest', 'read_manifest', 'upgrade_config', 'check_run_folder', 'save_state', 'load_state', 'check_datasets', 'DistInfo', 'dist_info', 'init_distributed', 'shard', 'gather_rows', 'forward_module', 'wrap_ddp', 'micro_batches', 'set_grad_checkpointing', 'check_places', 'check_pretrained', 'finetune', 'checkpoint_states', 'split_state', 'final_state', 'sequence_dir', 'finetune_sequence', 'evaluate_run', 'evaluate_sequence', 'run_experiment', 'run_sequence', 'FinetuneConfig', 'PAPER_DEFAULTS', 'MICRO_DEFAULTS']
EVALUATE = ['PRECISIONS', 'EVAL_PRECISION', 'ECE_BINS', 'LP_PROTOCOLS', 'LP_LRS', 'LP_GRID', 'LP_BACKENDS', 'LP_STEPS', 'FD_SEED', 'LP_HPARAM', 'resolve_precision', 'inference', 'sharded_evaluation', 'eval_world', 'gather_rows', 'all_sum', 'agree', 'on_main', 'model_fingerprint', 'encoder_cache', 'embedding_path', 'embed', 'accuracy_scores', 'calibration_error', 'zeroshot_accuracy', 'ProbeResult', 'lp_head', 'linear_probes', 'linear_probe', 'param_distance', 'fd_rows', 'feature_distance', 'concept_forgetting', 'logit_scale_of', 'dataset_head', 'taps_path', 'accuracies', 'reference_accuracies', 'evaluate_checkpoint']
MOVED = ('evaluate_run', 'evaluate_sequence', 'run_experiment', 'run_sequence')


@pytest.mark.parametrize('module, names', [('train', TRAIN), ('evaluate', EVALUATE)])
def test_old_names_still_import(module, names):
    mod = importlib.import_module(f'ldifs_nb.{module}')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        missing = [n for n in names if not hasattr(mod, n)]
    assert missing == []


def test_moved_names_warn_and_are_the_new_ones():
    import ldifs_nb.train as train, ldifs_nb.experiment as experiment
    for name in MOVED:
        with pytest.warns(DeprecationWarning, match=f'moved to ldifs_nb.experiment.{name}'):
            assert getattr(train, name) is getattr(experiment, name)
    with warnings.catch_warnings():
        warnings.simplefilter('error')   # names that did not move: no warning
        assert train.finetune is not None and train.read_manifest is importlib.import_module('ldifs_nb.runs').read_manifest
