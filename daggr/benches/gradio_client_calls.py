"""The Python side of benches/gradio.rs: N sequential calls of an endpoint through
gradio_client, timed in-process (connecting and one warm-up call are not timed).

Usage: python gradio_client_calls.py URL API_NAME N
Prints the elapsed seconds of the N calls.
"""
import sys
import time

from gradio_client import Client

url, api, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
client = Client(url, verbose=False)
assert client.predict(api_name=api) == "pong"
start = time.perf_counter()
for _ in range(n):
    client.predict(api_name=api)
print(time.perf_counter() - start)
