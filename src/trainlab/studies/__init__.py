"""Studies: runs of many trainings that answer a question.

`tune` (hyper-parameter search), `ablate` (which techniques help, paired over seeds),
`lr_finder` (the learning-rate range test over seeds) and `doctor` (diagnose a recipe,
recommend, and with --apply ablate the advice).
"""
