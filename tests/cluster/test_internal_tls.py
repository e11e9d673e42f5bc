

def test_a_gateway_with_worker_processes_uses_internal_tls_in_each(cluster: LeofsCluster) -> None:
    gateway = cluster.add_gateway("gw-workers", ("--workers", "2"))
    endpoint = f"http://127.0.0.1:{gateway.ports[0]}"
    body = os.urandom(MIB + 17)
    make_client(endpoint).put_object(Bucket=BUCKET, Key="w/obj", Body=body)
    for _ in range(8):  # fresh connections: the kernel spreads them over both processes
        assert make_client(endpoint).get_object(Bucket=BUCKET, Key="w/obj")["Body"].read() == body
    assert len(gateway.proc and cluster.pids()) > 0
