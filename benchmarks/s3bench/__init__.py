"""s3bench: a side-by-side S3 benchmark of leofs and SeaweedFS on loopback.

Modules: ``sigv4`` (request signing with a cached key), ``client`` (a lean aiohttp S3 client),
``loadgen`` (closed-loop concurrent load with latency recording), ``procstat`` (server CPU and
peak RSS from /proc), ``servers`` (launchers for leofs embedded, a leofs 3-node cluster, SeaweedFS
single server and SeaweedFS with three copies), ``workloads`` (the rows of issue 6), ``report``
(JSON and Markdown) and ``cli`` (the entry point used by ``benchmarks/run.py``).
"""
