"""Where a warm-up model's weights start (``world.<role>.init``), without the warm-up's heavy imports: the
config layer reads the choices from here.

- ``scratch``: random weights from the model's seed.
- ``student`` (the teacher only): the trained student, trained on the teacher's stories for the teacher's
  ``train_steps``. The two then share everything the student learnt (copying amounts, arithmetic, when to
  stop), and the teacher adds what only its stories teach: skipping another owner's action. That makes a
  teacher that sees through distractors and a student misled by them for the compute of one model and a
  few hundred steps, which is what a world cheap enough to repeat can afford on a CPU.
"""

WARMUP_INITS = ("scratch", "student")
