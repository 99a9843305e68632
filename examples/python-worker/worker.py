#!/usr/bin/env python3
"""A Plexus worker in Python: serves the component `py-text` (function `shout`) to Plexus
routers over gRPC (`plexus.router.v1`, proto/router.proto).

Needs grpcio and protobuf, and grpcio-tools to compile the .proto at start (Debian:
`apt-get install python3-grpcio python3-protobuf python3-grpc-tools`). Nothing is generated
ahead of time or checked in: the stubs are compiled from the repository's proto/router.proto
into a temporary directory when the worker starts, so they always match the router.

    python3 worker.py --router localhost:9090 --secret pwe_... --credential-file ./credential --id py-1

Only the envelope is protobuf; step messages, fields and results are JSON in `bytes` fields.
"""
import argparse
import json
import os
import queue
import signal
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PROTO = os.path.normpath(os.path.join(HERE, '..', '..', 'proto', 'router.proto'))


def load_stubs(proto_path):
    """Compiles router.proto with grpc_tools into a temporary directory and imports it."""
    from grpc_tools import protoc

    out = tempfile.mkdtemp(prefix='plexus-proto-')
    include = os.path.dirname(proto_path)
    code = protoc.main(['protoc', f'-I{include}', f'--python_out={out}', f'--grpc_python_out={out}', proto_path])
    if code != 0:
        raise SystemExit(f'compiling {proto_path} failed (protoc exit {code})')
    sys.path.insert(0, out)
    import router_pb2  # noqa: E402
    import router_pb2_grpc  # noqa: E402
    return router_pb2, router_pb2_grpc


# ---- the component ----------------------------------------------------------------------

def shout(step):
    """Upper-cases body.text (or the whole body as JSON) and says who did it."""
    body = step['message'].get('body')
    text = body.get('text') if isinstance(body, dict) else None
    if text is None:
        text = json.dumps(body)
    out = dict(body) if isinstance(body, dict) else {}
    out.update({'text': str(text).upper(), 'shoutedBy': 'python', 'suffix': step.get('fields', {}).get('suffix', '')})
    return {'messages': [{'message': {'body': out}}]}


COMPONENT = {'name': 'py-text', 'version': '1.0.0', 'functions': {'shout': shout}}


# ---- the worker -------------------------------------------------------------------------

class Worker:
    def __init__(self, pb, pb_grpc, args):
        self.pb = pb
        self.pb_grpc = pb_grpc
        self.args = args
        self.outbox = queue.Queue()
        self.pool = ThreadPoolExecutor(max_workers=args.concurrency)
        self.cancelled = set()
        self.running = set()
        self.lock = threading.Lock()
        self.stopped = threading.Event()

    def credential(self):
        try:
            with open(self.args.credential_file, encoding='utf-8') as f:
                return f.read().strip()
        except FileNotFoundError:
            return ''

    def store_credential(self, value):
        fd = os.open(self.args.credential_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'w', encoding='utf-8') as f:
            f.write(value + '\n')
        os.chmod(self.args.credential_file, 0o600)

    def hello(self):
        pb = self.pb
        credential = self.credential()
        offer = pb.ComponentOffer(name=COMPONENT['name'], version=COMPONENT['version'], functions=list(COMPONENT['functions']))
        return pb.WorkerMessage(hello=pb.Hello(
            worker_id=self.args.id,
            enrolment_secret='' if credential else (self.args.secret or ''),
            credential=credential,
            components=[offer],
            concurrency=self.args.concurrency,
            sdk='plexus-python-example/1',
        ))

    def requests(self):
        yield self.hello()
        while not self.stopped.is_set():
            try:
                msg = self.outbox.get(timeout=0.5)
            except queue.Empty:
                continue
            if msg is None:
                return
            yield msg

    def send(self, **body):
        self.outbox.put(self.pb.WorkerMessage(**body))

    def heartbeat(self, every_s):
        while not self.stopped.wait(every_s):
            with self.lock:
                held = list(self.running)
            self.send(heartbeat=self.pb.Heartbeat(delivery_ids=held))

    def run_delivery(self, d):
        pb = self.pb
        try:
            fn = COMPONENT['functions'].get(d.function)
            if fn is None or d.component != COMPONENT['name']:
                raise LookupError(f'this worker does not serve {d.component} {d.function}')
            result = fn(json.loads(d.payload_json.decode('utf-8')))
            with self.lock:
                if d.delivery_id in self.cancelled:
                    return
            self.send(outcome=pb.StepOutcome(delivery_id=d.delivery_id, result_json=json.dumps(result).encode('utf-8')))
        except Exception as err:  # the step failed: report it, the engine retries transient failures
            kind = 'user' if isinstance(err, (ValueError, TypeError, KeyError)) else 'transient'
            self.send(outcome=pb.StepOutcome(delivery_id=d.delivery_id, error=pb.StepError(message=str(err), kind=kind)))
        finally:
            with self.lock:
                self.running.discard(d.delivery_id)

    def admin(self, cmd):
        pb = self.pb
        self.send(receipt=pb.Receipt(uuid=cmd.header.uuid))
        if cmd.command == 'admin.list':
            event, payload = 'SUCCEEDED', {'workerId': self.args.id, 'components': [{'name': COMPONENT['name'], 'version': COMPONENT['version'], 'functions': list(COMPONENT['functions'])}]}
        else:
            event, payload = 'FAILED', {'error': f'the python example answers admin.list only, not {cmd.command}'}
        header = pb.Header(uuid=str(uuid.uuid4()), tenant=cmd.header.tenant, timestamp_unix_ms=int(time.time() * 1000), major=1)
        self.send(event=pb.Event(header=header, topic='command', event=event, reference_uuid=cmd.header.uuid, payload_json=json.dumps(payload).encode('utf-8')))

    def serve(self, channel):
        stub = self.pb_grpc.RouterStub(channel)
        for msg in stub.Attach(self.requests()):
            kind = msg.WhichOneof('body')
            if kind == 'welcome':
                if msg.welcome.credential:
                    self.store_credential(msg.welcome.credential)
                threading.Thread(target=self.heartbeat, args=(max(0.05, msg.welcome.heartbeat_ms / 1000),), daemon=True).start()
                print(f'python worker attached to {self.args.router} as {msg.welcome.worker_id} (tenant {msg.welcome.tenant})', flush=True)
            elif kind == 'refused':
                print(f'refused: {msg.refused.code}: {msg.refused.message}', file=sys.stderr, flush=True)
                raise SystemExit(3)
            elif kind == 'delivery':
                with self.lock:
                    self.running.add(msg.delivery.delivery_id)
                self.pool.submit(self.run_delivery, msg.delivery)
            elif kind == 'cancel':
                with self.lock:
                    self.cancelled.add(msg.cancel.delivery_id)
                    self.running.discard(msg.cancel.delivery_id)
            elif kind == 'command' and msg.command.target == 'admin':
                self.admin(msg.command)

    def stop(self, *_):
        self.stopped.set()
        self.outbox.put(None)


def main():
    parser = argparse.ArgumentParser(description='Plexus worker example in Python')
    parser.add_argument('--router', required=True, help='host:port of an aggregator instance')
    parser.add_argument('--secret', help='enrolment secret (first start only)')
    parser.add_argument('--credential-file', required=True)
    parser.add_argument('--id', required=True, help='worker name')
    parser.add_argument('--concurrency', type=int, default=8)
    parser.add_argument('--proto', default=DEFAULT_PROTO)
    args = parser.parse_args()

    import grpc

    pb, pb_grpc = load_stubs(args.proto)
    worker = Worker(pb, pb_grpc, args)
    signal.signal(signal.SIGTERM, worker.stop)
    signal.signal(signal.SIGINT, worker.stop)
    backoff = 0.2
    while not worker.stopped.is_set():
        try:
            with grpc.insecure_channel(args.router) as channel:
                worker.serve(channel)
        except grpc.RpcError as err:
            if err.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT):
                print(f'refused: {err.code().name}: {err.details()}', file=sys.stderr, flush=True)
                raise SystemExit(3)
            print(f'stream ended ({err.code().name}); reconnecting', file=sys.stderr, flush=True)
        if worker.stopped.is_set():
            break
        time.sleep(backoff)
        backoff = min(10.0, backoff * 2)
        worker.outbox = queue.Queue()


if __name__ == '__main__':
    main()
