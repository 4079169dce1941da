"""Detection: the wing of `tracker` that reads the store for the pure detectors and stores what they find.

- `pipeline.detect`: `tracker detect` (facts, rules, scores, cases), its fast paths chosen once (`tracker.plan`);
- `shipment_facts`: the `shipment_facts` table, each tracking number's facts (`detectors.facts`), kept fresh;
- `readers` (one seam: SQL in `store`, the child readers in `arrow`): the order frames rules and classifier read;
- `flagging`: runs the rules (`detectors.rules`) and writes `flags`;
- `scoring` and `score_writer`: the classifier's scores and their reasons, written to `scores`;
- `training`, `registry`, `persistence`, `message_training`: fitting, storing and loading the models;
- `threads`: how many threads the boosting may use on this machine now.

`detectors/` never imports this package: frames go in, findings, features and probabilities come out.
"""
