FROM golang:1.26
COPY single-stage.Dockerfile /x
RUN go build -o /out/app .
ENTRYPOINT ["/out/app"]
