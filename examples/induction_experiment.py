"""Watch an induction head form: train a tiny 2-layer GPT on repeated random sequences.

    python examples/induction_experiment.py --out runs/induction --steps 1500

Prints the loss on each half of held-out sequences and the best induction score as training
runs, then writes into --out: induction.png (loss and every head's induction score against
steps), grid.png and induction.html (all heads on a held-out sequence; the induction head is
outlined / selected), model/ (open it with ``qkv show "t5 t9 t3 t5 t9" --model
runs/induction/model --terminal --layer 1 --head H``) and history.json.
"""

from __future__ import annotations

import argparse

from qkv.experiments.induction import run_experiment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/induction", help="output folder")
    parser.add_argument("--steps", type=int, default=1500, help="training steps")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    args = parser.parse_args()
    result = run_experiment(args.out, steps=args.steps, seed=args.seed, progress=True)
    print(
        f"\ninduction head: layer {result.best_layer}, head {result.best_head}; induction score "
        f"{result.initial_induction:.2f} at step 0 -> {result.final_induction:.2f} after "
        f"{result.steps} steps ({result.seconds:.0f} s)"
    )
    for name, path in result.files.items():
        print(f"{name:>8}: {path}")


if __name__ == "__main__":
    main()
