"""calf-bench: the paper's protocols, its critics' ablations and strong baselines, in one command.

| module | what |
|---|---|
| :mod:`~calf_forecaster.bench.grid` | suites, variants, backbones, :class:`RunSpec` (one run, a stable key), grid expansion, shards |
| :mod:`~calf_forecaster.bench.runners` | one run of each protocol (long-term, short-term M4, few-shot, zero-shot) and the baselines |
| :mod:`~calf_forecaster.bench.records` | JSON records (configuration, machine, versions, metrics, cost), resume, git commits |
| :mod:`~calf_forecaster.bench.report` | Markdown report with the published numbers, PNG plots |
| :mod:`~calf_forecaster.bench.published` | the published CALF numbers, with their source |
| :mod:`~calf_forecaster.bench.cli` | ``calf-bench run|report|list`` (also ``python -m calf_forecaster.bench``) |

Training, windowing and scaling are never re-implemented here: every CALF run goes through
:class:`~calf_forecaster.pipeline.CALFPipeline`, splits and window counts through
:mod:`calf_forecaster.datasets`, scores through :mod:`calf_forecaster.metrics`.
"""
