#!/bin/sh
# The shop's front end: asks the api job by name for the catalogue and renders it.
printf 'Content-Type: text/plain\r\n\r\n'
echo "Acme shop (web on $(hostname))"
if catalogue=$(wget -q -O - http://api:9000/ 2>&1); then
    echo "$catalogue"
else
    echo "the api job did not answer: $catalogue"
fi
