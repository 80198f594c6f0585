# Evaluation (filled in below as the evaluation stage lands).
