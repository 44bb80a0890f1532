"""Create a video with the official openai client, wait for it, save it, print the plan.

python examples/client.py examples/cup.jpg "展示这个杯子旋转" [--base-url http://127.0.0.1:8000/v1]
"""

import argparse
import json
import warnings

from openai import OpenAI

# openai 3.x marks its videos methods deprecated; the /v1/videos shape is this service's API.
warnings.filterwarnings("ignore", message=".*Sora API.*")

parser = argparse.ArgumentParser()
parser.add_argument("image")
parser.add_argument("instruction")
parser.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
parser.add_argument("--out", default="out.mp4")
args = parser.parse_args()

client = OpenAI(base_url=args.base_url, api_key="unused")
with open(args.image, "rb") as image:
    video = client.videos.create_and_poll(prompt=args.instruction, input_reference=image)
if video.status != "completed":
    raise SystemExit(f"{video.id} failed: {video.error.code}: {video.error.message}")
client.videos.download_content(video.id).write_to_file(args.out)
print(json.dumps(video.model_extra["plan"], ensure_ascii=False, indent=2))
print(f"{video.id}: {video.size}, {video.seconds} s -> {args.out}")
