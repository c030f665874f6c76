"""How a model is judged: scikit-learn metrics, energy and CO2e, the evaluator every variant goes through,
runs compared side by side, predictions on image files, and scores on real photos never trained on (checkset)."""
