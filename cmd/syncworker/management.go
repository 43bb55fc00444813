package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// managementClient reads queue counters from the RabbitMQ management HTTP API, which knows
// unacked counts that AMQP cannot report. Its numbers lag by the broker's statistics
// interval (5 s by default).
type managementClient struct {
	base  *url.URL
	vhost string
	http  *http.Client
}

// newManagementClient returns nil when amqp.management_url is not set.
func newManagementClient(s *settings) *managementClient {
	if s.AMQP.ManagementURL == "" {
		return nil
	}
	base, err := url.Parse(strings.TrimRight(s.AMQP.ManagementURL, "/"))
	if err != nil {
		return nil // validated already
	}
	vhost := "/"
	if u, err := url.Parse(s.AMQP.URL); err == nil && len(u.Path) > 1 {
		vhost, _ = url.PathUnescape(u.Path[1:])
	}
	if base.User == nil { // the AMQP user is the usual management user
		if u, err := url.Parse(s.AMQP.URL); err == nil {
			base.User = u.User
		}
	}
	return &managementClient{base: base, vhost: vhost, http: &http.Client{Timeout: 10 * time.Second}}
}

// unacked returns the queue's messages_unacknowledged.
func (m *managementClient) unacked(ctx context.Context, queue string) (int64, error) {
	u := *m.base
	u.User = nil
	reqURL := u.String() + "/api/queues/" + url.PathEscape(m.vhost) + "/" + url.PathEscape(queue)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, reqURL, nil)
	if err != nil {
		return 0, err
	}
	if m.base.User != nil {
		pass, _ := m.base.User.Password()
		req.SetBasicAuth(m.base.User.Username(), pass)
	}
	resp, err := m.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("management API: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("management API: GET %s: %s", reqURL, resp.Status)
	}
	var body struct {
		Unacked *int64 `json:"messages_unacknowledged"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, fmt.Errorf("management API: %w", err)
	}
	if body.Unacked == nil {
		return 0, nil // a queue the statistics have not sampled yet
	}
	return *body.Unacked, nil
}
