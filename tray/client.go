package tray

import (
	"context"
	"errors"

	"github.com/hyperos/hyperos/app/api"
	"github.com/hyperos/hyperos/app/client"
)

// FromClient makes the local API client a Service. The tray asks for no waiting
// (boot and restart return at once): progress arrives on the event stream.
func FromClient(c *client.Client) Service { return apiService{c} }

type apiService struct{ c *client.Client }

func (s apiService) Events(ctx context.Context, fn func(api.Event)) error {
	ev, err := s.c.Events(ctx)
	if err != nil {
		return err
	}
	defer ev.Close()
	for {
		e, err := ev.Next()
		if errors.Is(err, client.ErrLagged) {
			fn(e)
		}
		if err != nil {
			return err
		}
		fn(e)
	}
}

func (s apiService) Status(ctx context.Context) (api.Status, error) { return s.c.Status(ctx) }

func (s apiService) Boot(ctx context.Context) error {
	_, err := s.c.Boot(ctx, false)
	return err
}

func (s apiService) Halt(ctx context.Context) error {
	_, err := s.c.Halt(ctx)
	return err
}

func (s apiService) StopContainer(ctx context.Context, name string) error {
	_, err := s.c.StopContainer(ctx, name)
	return err
}

func (s apiService) Restart(ctx context.Context) error {
	_, err := s.c.Restart(ctx, false)
	return err
}
