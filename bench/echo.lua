-- wrk script for bench/run.sh: POST a 1 KiB body to the hello app's echo route.
wrk.method = "POST"
wrk.body = string.rep("x", 1024)
wrk.headers["Content-Type"] = "application/octet-stream"
