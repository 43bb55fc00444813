FROM golang:1.26 AS build
FORM scratch
COPY
