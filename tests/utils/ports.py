import socket


def free_ports(count: int) -> list[int]:
    """Distinct loopback ports that were free a moment ago."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def loopback_triton(repository, work, **extra):
    """TritonSettings for a test's own Triton: free loopback ports, its log under `work`."""
    from orchestrator.settings import TritonSettings

    http, grpc, metrics = free_ports(3)
    return TritonSettings(
        http_port=http,
        grpc_port=grpc,
        metrics_port=metrics,
        model_repository=repository,
        work_dir=work,
        log_file=work / "triton.log",
        **extra,
    )
