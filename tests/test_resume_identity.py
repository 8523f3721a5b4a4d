"""A training run killed with SIGTERM after a checkpoint and run again ends exactly where an uninterrupted
run ends: the same weights (sha256) and the same logged losses, across epoch boundaries."""

import json
import subprocess
import sys

import pytest

# One training job, as a fresh process runs it: 40 examples in batches of 8 are 5 steps an epoch, so a kill
# after step 6 resumes inside the second epoch (where the Trainer's own sampler drew another order).
JOB = r"""
import hashlib, json, logging, os, signal, sys
logging.basicConfig(level=logging.INFO)
from transformers import TrainerCallback
from tracesieve.config import TrainingConfig
from tracesieve.modeling import build_llama
from tracesieve.training import encode_for_sft, train_causal_lm
from tracesieve.world.problems import generate_problems
from tracesieve.world.tokenizer import build_word_tokenizer

output_dir, kill_at = sys.argv[1], int(sys.argv[2])
problems = generate_problems(40, seed=0, split="train", min_steps=2, max_steps=3, max_value=20, distractor_rate=0.5,
                             check_rate=0.4, restatement_rate=0.3, detour_rate=0.4, after_final_rate=0.15)
tokenizer = build_word_tokenizer([p.question + p.reasoning for p in problems] + ["\\boxed{} So, the final answer is"], numbers_up_to=40)
examples = [encode_for_sft(tokenizer, p.question, p.reasoning, p.answer) for p in problems]

class KillAfterSave(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        if state.global_step == kill_at:
            os.kill(os.getpid(), signal.SIGTERM)

model = build_llama(tokenizer, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, max_positions=512, seed=0)
config = TrainingConfig(max_steps=12, batch_size=8, learning_rate=3e-3, logging_steps=1, save_steps=3, seed=0, warmup_ratio=0.1)
model, history = train_causal_lm(model, examples, config, output_dir=output_dir, tokenizer=tokenizer, callbacks=[KillAfterSave()])
digest = hashlib.sha256(b"".join(tensor.numpy().tobytes() for tensor in model.state_dict().values())).hexdigest()
print(json.dumps({"sha256": digest, "history": history}))
"""


def _job(output_dir, kill_at: int = -1) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", JOB, str(output_dir), str(kill_at)], capture_output=True, text=True, timeout=600)


@pytest.mark.e2e
def test_a_run_killed_after_a_checkpoint_resumes_to_identical_weights_and_losses(tmp_path):
    whole = _job(tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-3000:]
    uninterrupted = json.loads(whole.stdout.strip().splitlines()[-1])
    killed = _job(tmp_path / "resumed", kill_at=6)
    assert killed.returncode == -15, killed.stderr[-3000:]  # SIGTERM, right after checkpoint-6 was written
    assert (tmp_path / "resumed" / "checkpoint-6" / "optimizer.pt").is_file()
    again = _job(tmp_path / "resumed")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Resuming training from" in again.stderr
    resumed = json.loads(again.stdout.strip().splitlines()[-1])
    assert resumed["sha256"] == uninterrupted["sha256"]
    assert resumed["history"] == uninterrupted["history"]  # every logged loss and learning rate, bit for bit
