"""The loop: a lineage's generations, their stages, candidates, gate bookkeeping and promotion; sweeps and studies."""
