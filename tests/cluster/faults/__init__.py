"""The fault-injection harness the cluster tests share: node processes (SIGKILL, SIGSTOP/SIGCONT),
a TCP proxy in front of each node (delay, drop, black-hole), and a steady S3 load that records
every request."""
