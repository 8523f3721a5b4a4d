"""LeaF (docs/design.md, "LeaF"): teacher-versus-student input gradients find the prompt tokens that mislead the
student; counterfactuals without them feed a teacher-to-student distillation.

- ``gradients``: per analysed token, g_i = ||dL/de_i||_2 for each model, aligned across tokenizers, and
  the normalised difference delta;
- ``confounders``: the low-delta tokens, their spans and the counterfactual texts without them;
- ``distillation``: the forward-KL objective on shifted logits and the trainer that optimises it.
"""
